"""Evaluation bags: topics and roles, frame messages and ground truth, storage, salvage of cut recordings,
the player that replays a bag through the node, the writer and the evaluation of a bag (docs/bags.md)."""
