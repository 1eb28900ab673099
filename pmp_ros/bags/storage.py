"""rosbag2 files (mcap or sqlite3) through rosbags: writing serialised messages, and reading whatever a
possibly damaged bag still holds.

Reading never raises for a bad bag: problems (missing topics, unexpected or unknown message types, a
truncated or unreadable file) are collected as sentences for the report, and the messages read before a
failure are still delivered.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from pmp_ros.bags.messages import GT_OBJECT_TYPE, GT_TYPE, ROLE_TYPES, BagTopics
from pmp_ros.bags.salvage import salvage_mcap

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION = 8  # understood by Humble and later
CUSTOM_PACKAGE = "pmp_ros_msgs"
CUSTOM_TYPES = ("GroundTruthObject", "GroundTruth")  # dependencies first


def _msg_folder() -> Path:
    """Where pmp_ros_msgs' .msg files are: the ament share folder of this environment, or the sources."""
    candidates = [Path(sys.prefix) / "share" / CUSTOM_PACKAGE / "msg", Path(__file__).resolve().parents[2] / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory(CUSTOM_PACKAGE)) / "msg")
    except (ImportError, LookupError, OSError):
        pass
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in CUSTOM_TYPES):
            return folder
    raise FileNotFoundError(f"{CUSTOM_PACKAGE} message definitions not found in {[str(c) for c in candidates]}")


def typestore():
    """Kilted's types plus pmp_ros_msgs/GroundTruth: the definitions a bag stores beside its messages (what
    `ros2 bag info/play` and other readers need)."""
    store = get_typestore(Stores.ROS2_KILTED)
    folder = _msg_folder()
    for name in CUSTOM_TYPES:
        store.register(get_types_from_msg((folder / f"{name}.msg").read_text(), f"{CUSTOM_PACKAGE}/msg/{name}"))
    return store


def ground_truth_upgrade(definition: str) -> Callable[[bytes], bytes] | None:
    """None when a bag's GroundTruth definition (the text it stores beside its messages) has the current
    GroundTruthObject fields; otherwise a function from such a message's bytes to the same message in the
    current definition, each field added since then unknown as msg/GroundTruthObject.msg says (NaN occlusion
    and visible centre, an empty shape): bags recorded before the 3D truths stay readable. A bag that stores
    no definition is taken to be current."""
    if not definition.strip():
        return None
    store = typestore()
    recorded = get_typestore(Stores.ROS2_KILTED)
    recorded.register(get_types_from_msg(definition, GT_TYPE))
    names = [name for name, _ in store.fielddefs[GT_OBJECT_TYPE][1]]
    old_names = {name for name, _ in recorded.fielddefs[GT_OBJECT_TYPE][1]}
    if old_names == set(names):
        return None
    point, pose, quaternion = (store.types[f"geometry_msgs/msg/{name}"] for name in ("Point", "Pose", "Quaternion"))
    nan = float("nan")
    unknown = {
        "occlusion": nan,
        "visible_centre": point(nan, nan, nan),
        "shape": "",
        "radius": 0.0,
        "height": 0.0,
        "pose": pose(point(0.0, 0.0, 0.0), quaternion(0.0, 0.0, 0.0, 1.0)),
    }
    truth_class, object_class = store.types[GT_TYPE], store.types[GT_OBJECT_TYPE]

    def upgrade(data: bytes) -> bytes:
        old = recorded.deserialize_cdr(data, GT_TYPE)
        objects = [
            object_class(**{name: getattr(o, name) if name in old_names else unknown[name] for name in names})
            for o in old.objects
        ]
        fields = {name: getattr(old, name) for name, _ in store.fielddefs[GT_TYPE][1]}
        return bytes(store.serialize_cdr(truth_class(**{**fields, "objects": objects}), GT_TYPE))

    return upgrade


class BagWriter:
    """Serialised messages into a new bag; connections are created on first use of a topic."""

    def __init__(self, path: Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {list(STORAGES)}, got {storage!r}")
        self._store = typestore()
        self._writer = Writer(Path(path), version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, time_ns: int, data: bytes) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self._writer.write(self._connections[topic], time_ns, data)


@dataclass(frozen=True)
class BagMessage:
    role: str
    msgtype: str
    time_ns: int
    data: bytes


@dataclass
class BagContents:
    """What an evaluation can use from a bag: role -> message type of the topics found, message counts per
    role, the first message time, problems as sentences, topics not used, and every topic found with its
    type (what a user needs to name the right ones)."""

    path: Path
    topics: BagTopics
    roles: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    start_ns: int = 0
    problems: list[str] = field(default_factory=list)
    other_topics: dict[str, str] = field(default_factory=dict)
    found: dict[str, str] = field(default_factory=dict)

    def _add(self, topic: str, msgtype: str, count: int) -> bool:
        """Assign a connection to its role; False when it is not used."""
        self.found[topic] = msgtype
        role = self.topics.by_topic().get(topic)
        if role is None:
            self.other_topics[topic] = msgtype
            return False
        if msgtype not in ROLE_TYPES[role]:
            self.problems.append(
                f"topic {topic} ({role}) has type {msgtype}, expected {' or '.join(ROLE_TYPES[role])}: ignored"
            )
            return False
        self.roles[role] = msgtype
        self.counts[role] = self.counts.get(role, 0) + count
        return True

    def _note_missing(self) -> None:
        for role in ROLE_TYPES:
            topic = getattr(self.topics, role)
            if role not in self.roles and not any(p.startswith(f"topic {topic} ") for p in self.problems):
                self.problems.append(f"no {role} topic {topic} in the bag")


MessageSource = Callable[[], Iterator[BagMessage]]


def inspect_bag(path: Path, topics: BagTopics, topics_only: bool = False) -> tuple[BagContents, MessageSource | None]:
    """Open a bag and check its topics against the roles; returns (contents, a function that yields the
    messages of the usable topics in recorded order, or None when nothing can be read or with topics_only,
    which closes the bag once its topics are known).

    A bag rosbags cannot open whose folder holds an mcap file (a recording cut short has no summary and
    often no metadata.yaml) is read record by record up to the damage (mcap_salvage.py)."""
    contents = BagContents(Path(path), topics)
    try:
        reader = Reader(Path(path))
        reader.open()
    except Exception as error:  # rosbags raises several types for missing/corrupt files
        contents.problems.append(f"cannot open bag {path}: {type(error).__name__}: {error}")
        source = _salvage(contents)
        return contents, None if topics_only else source
    used = [c for c in reader.connections if contents._add(c.topic, c.msgtype, c.msgcount)]
    contents.start_ns = reader.start_time
    contents._note_missing()
    if topics_only:
        reader.close()
        return contents, None
    by_topic = topics.by_topic()
    # Definitions in another format than .msg (IDL) are not read: such a bag is taken to be current.
    stored = {
        c.topic: (c.msgtype, c.msgdef.data if c.msgdef.format == MessageDefinitionFormat.MSG else "") for c in used
    }
    readers = _readers(contents, stored)

    def messages() -> Iterator[BagMessage]:
        try:
            if not used:  # rosbags reads every connection when given none
                return
            for connection, time_ns, data in reader.messages(connections=used):
                read = readers.get(connection.topic, bytes)
                yield BagMessage(by_topic[connection.topic], connection.msgtype, time_ns, read(data))
        except Exception as error:
            contents.problems.append(
                f"reading stopped early ({type(error).__name__}: {error}): the bag is "
                f"truncated or damaged; results cover the messages before that point"
            )
        finally:
            reader.close()

    return contents, messages


def _readers(contents: BagContents, topics: dict[str, tuple[str, str]]) -> dict[str, Callable[[bytes], bytes]]:
    """Per topic whose messages must be converted to the current definitions, the conversion (noted in the
    problems). topics: topic -> (message type, the definition the bag stores for it)."""
    readers = {}
    for topic, (msgtype, definition) in topics.items():
        try:
            upgrade = ground_truth_upgrade(definition) if msgtype == GT_TYPE else None
        except Exception as error:  # rosbags raises several types for a definition it cannot parse
            contents.problems.append(f"the definition stored for {topic} does not parse ({error}): read as current")
            continue
        if upgrade is not None:
            readers[topic] = upgrade
            contents.problems.append(
                f"ground truth on {topic} was recorded without the 3D truths (an older GroundTruthObject): read "
                f"with them unknown"
            )
    return readers


def _salvage(contents: BagContents) -> MessageSource | None:
    path = contents.path
    files = [path] if path.suffix == ".mcap" else sorted(path.glob("*.mcap")) if path.is_dir() else []
    if not files:
        return None
    result, records = salvage_mcap(files[0])
    used = {
        cid
        for cid, (topic, msgtype) in result.channels.items()
        if contents._add(topic, msgtype, result.counts.get(cid, 0))
    }
    contents.start_ns = result.start_ns
    contents._note_missing()
    contents.problems.append(
        f"read {files[0].name} record by record: {sum(result.counts.values())} messages up to the damage"
    )
    contents.problems += result.problems
    by_topic = contents.topics.by_topic()
    topics = {result.channels[c][0]: (result.channels[c][1], result.definitions[c]) for c in used}
    readers = _readers(contents, topics)

    def messages() -> Iterator[BagMessage]:
        for channel_id, time_ns, data in records:
            if channel_id in used:
                topic, msgtype = result.channels[channel_id]
                yield BagMessage(by_topic[topic], msgtype, time_ns, readers.get(topic, bytes)(data))

    return messages
