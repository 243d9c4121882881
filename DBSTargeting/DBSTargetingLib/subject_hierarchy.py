"""One subject-hierarchy folder per case, holding every node the module makes for it.

Inside Slicer a node gets its subject-hierarchy item as soon as it is added to the scene; in a bare
MRML scene (``slicer-core``) nobody does that, so these helpers create the item when it is missing.
"""
from __future__ import annotations


def _hierarchy(scene):
    from slicer import vtkMRMLSubjectHierarchyNode

    hierarchy = vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        raise RuntimeError("the scene has no subject hierarchy")
    return hierarchy


def find_case_folder(scene, case_name: str) -> int:
    """Item ID of the top-level folder named ``case_name``, or 0 when there is none."""
    hierarchy = _hierarchy(scene)
    return hierarchy.GetItemChildWithName(hierarchy.GetSceneItemID(), case_name) or 0


def case_folder(scene, case_name: str) -> int:
    """Item ID of the top-level folder named ``case_name`` (made when missing)."""
    item = find_case_folder(scene, case_name)
    if item:
        return item
    hierarchy = _hierarchy(scene)
    return hierarchy.CreateFolderItem(hierarchy.GetSceneItemID(), case_name)


def place_in_folder(scene, node, folder_item: int) -> int:
    """Put ``node`` under ``folder_item`` (creating its item if the scene has none); returns its item."""
    hierarchy = _hierarchy(scene)
    item = hierarchy.GetItemByDataNode(node)
    if not item:
        return hierarchy.CreateItem(folder_item, node)
    if hierarchy.GetItemParent(item) != folder_item:
        hierarchy.SetItemParent(item, folder_item)
    return item


def remove_item_of(scene, node) -> None:
    """Remove the subject-hierarchy item of ``node`` (not the node itself). Inside Slicer removing a
    node also removes its item; a bare MRML scene keeps the stale item, so removal goes through here."""
    hierarchy = _hierarchy(scene)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.RemoveItem(item, False, False)  # keep the data node (removed by the caller), keep children


def nodes_in_folder(scene, folder_item: int) -> list:
    """Data nodes of every item below ``folder_item`` (recursively)."""
    import vtk

    hierarchy = _hierarchy(scene)
    children = vtk.vtkIdList()
    hierarchy.GetItemChildren(folder_item, children, True)
    nodes = []
    for n in range(children.GetNumberOfIds()):
        node = hierarchy.GetItemDataNode(children.GetId(n))
        if node is not None:
            nodes.append(node)
    return nodes


def folder_of(scene, node) -> str:
    """Name of the folder holding ``node`` ("" when it has none)."""
    hierarchy = _hierarchy(scene)
    item = hierarchy.GetItemByDataNode(node)
    if not item:
        return ""
    parent = hierarchy.GetItemParent(item)
    return "" if parent == hierarchy.GetSceneItemID() else hierarchy.GetItemName(parent)
