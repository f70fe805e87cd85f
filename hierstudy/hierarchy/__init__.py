"""Class hierarchies: the tree / DAG (:mod:`.tree`), WordNet's (:mod:`.wordnet`) and the
measures that compare two hierarchies over the same classes (:mod:`.compare`)."""

from .tree import Hierarchy, HierarchyError, toy_hierarchy

__all__ = ["Hierarchy", "HierarchyError", "toy_hierarchy"]
