"""What a camera's inputs lack, said at the boundary: no image at all, images that stop arriving, depth enabled
but no depth or camera info with the images. ROS-free: the node feeds it topic names, publisher counts and
message counts once a second (its diagnostics timer) and logs each new problem once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Seconds without any image (from activation, or since the last one while a publisher is there) before it is
# said, and seconds of images without depth or camera info (with use_depth) before that is said.
NO_IMAGE_WARNING_S = 5.0
NO_DEPTH_WARNING_S = 3.0


@dataclass(frozen=True)
class TopicState:
    """One input topic at a check: its resolved name, how many publishers it has, messages received so far."""

    topic: str
    publishers: int
    received: int


@dataclass
class InputWatch:
    """One camera's inputs over time (from its activation at `started`, time.monotonic())."""

    started: float
    first_image_at: float | None = None
    silent_since: float | None = None  # since when the image topic has publishers but no new images
    received_at_last_check: int = 0
    _logged: set[str] = field(default_factory=set)

    def problems(
        self, now: float, image: TopicState, depth: TopicState | None = None, info: TopicState | None = None
    ) -> dict[str, str]:
        """The camera's input problems at `now` (depth and info: with use_depth): kind -> a sentence that names
        the topic and the likely fix."""
        found = {}
        if image.received and self.first_image_at is None:
            self.first_image_at = now
        if not image.publishers or image.received != self.received_at_last_check:
            self.silent_since = None
        elif self.silent_since is None:
            self.silent_since = now
        self.received_at_last_check = image.received
        if not image.received and not image.publishers and now - self.started >= NO_IMAGE_WARNING_S:
            found["no image publisher"] = (
                f"no publisher on {image.topic} for {now - self.started:.0f} s: is the camera running, and is "
                f"the node's image topic remapped to the camera's (-r image:=/camera/... or launch image:=...)?"
            )
        elif self.silent_since is not None and now - self.silent_since >= NO_IMAGE_WARNING_S:
            found["no image"] = (
                f"{image.publishers} publisher(s) on {image.topic} but no image for {now - self.silent_since:.0f} s; "
                f"is the camera streaming?"
            )
        if self.first_image_at is not None and now - self.first_image_at >= NO_DEPTH_WARNING_S:
            for state, what, remap in ((depth, "depth image", "depth"), (info, "camera info", "depth_info")):
                if state is not None and not state.received:
                    found[f"no {what}"] = (
                        f"use_depth is true but no {what} arrived on {state.topic} ({state.publishers} "
                        f"publisher(s)) in {now - self.first_image_at:.0f} s of images: no 3D until it does; remap "
                        f"it to the camera's (launch {remap}:=...)"
                    )
        return found

    def new(self, problems: dict[str, str]) -> list[str]:
        """The problems whose kind was not reported before, so that each is logged once."""
        fresh = [text for kind, text in problems.items() if kind not in self._logged]
        self._logged |= set(problems)
        return fresh
