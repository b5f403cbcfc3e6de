"""Furniture names map onto ModelNet40 classes by head noun, with the documented exceptions."""

import pytest

from cg3d.data.label_map import (
    EXACT_NAMES,
    HEAD_NOUNS,
    MODELNET10_CLASSES,
    MODELNET40_CLASSES,
    class_mapper,
    modelnet40_class_for,
    modelnet40_label_mapping,
)


def test_class_lists():
    assert len(MODELNET40_CLASSES) == 40 == len(set(MODELNET40_CLASSES))
    assert list(MODELNET40_CLASSES) == sorted(MODELNET40_CLASSES)  # published order
    assert len(MODELNET10_CLASSES) == 10
    assert set(MODELNET10_CLASSES) <= set(MODELNET40_CLASSES)


def test_tables_only_name_real_classes():
    targets = set(EXACT_NAMES.values()) | set(HEAD_NOUNS.values())
    assert targets - {None} <= set(MODELNET40_CLASSES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # head noun decides, whatever the modifier
        ("Glass table", "table"),
        ("Glass door", "door"),
        ("Coffee table", "table"),
        ("Corner sofa", "sofa"),
        ("Desk lamp", "lamp"),
        ("Iron bed", "bed"),
        ("Exterior door", "door"),
        ("Bar stool", "stool"),
        ("Palm tree", "plant"),
        ("Ficus", "plant"),
        ("Beer glass", "cup"),
        ("Wine bottle", "bottle"),
        ("Electric guitar", "guitar"),
        ("Grand piano", "piano"),
        ("Spiral staircase", "stairs"),
        ("Sitting male", "person"),
        ("Female", "person"),
        ("Smart car", "car"),
        ("Range hood", "range_hood"),
        ("Fireplace", "mantel"),
        ("Wall flat TV", "monitor"),
        ("Camping tent", "tent"),
        ("Shower curtain", "curtain"),
        ("Corner bathtub", "bathtub"),
        # a longer tail beats the bare head noun
        ("Bedside table", "night_stand"),
        ("Oak bedside table", "night_stand"),
        ("Piano bench", "bench"),
        ("Sofa bed", "sofa"),
        ("Futon couch", "sofa"),
        ("Desk table", "desk"),
        ("TV stand", "tv_stand"),
        ("Chest of drawers", "dresser"),
        # single-word catalogue names
        ("Armchair", "chair"),
        ("Bookcase", "bookshelf"),
        ("Washbasin", "sink"),
        ("Wardrobe", "wardrobe"),
        ("Keyboard", "keyboard"),
        ("Laptop", "laptop"),
        ("Radio", "radio"),
        ("Vase", "vase"),
        ("Bowl", "bowl"),
        ("Cone", "cone"),
        # qualifiers after the head noun are dropped
        ("Chair with cushion", "chair"),
        ("Table on trestles", "table"),
        ("Pine under snow", "plant"),
        ("Sofa 3 seats", "sofa"),
        ("TV 16:9", "monitor"),
        ("Apple iMac 2004", "monitor"),
        ("Double door with panes", "door"),
        ("Night-stand", "night_stand"),
        ("  TOILETS   unit ", "toilet"),
        # explicit table: brands and odd names
        ("Ford Focus", "car"),
        ("Apple iBook", "laptop"),
        ("PlayStation", "xbox"),
        ("Convertible sofa BZ", "sofa"),
        ("Television cabinet", "tv_stand"),
        ("Wood bank", "bench"),
    ],
)
def test_names_that_map(name, expected):
    assert modelnet40_class_for(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "Truck",
        "Van",
        "Table fan",  # a fan, not a table
        "Table tennis",
        "Glass door cabinet",  # a cabinet, not a door
        "Pool table",
        "Dressing table",
        "Abdominal bench",
        "Toilet brush",
        "Toilet paper dispenser",
        "Intercom with screen",  # the clause names a part, not the object
        "Screen",
        "Glasses",  # spectacles, not drinking glasses
        "Cup cake",
        "Wheelchair",
        "Hedge",
        "Double window 3 panes",
        "Radiator",
        "",
    ],
)
def test_names_without_a_class(name):
    assert modelnet40_class_for(name) is None


def test_non_string_name_is_refused():
    with pytest.raises(TypeError, match="got int"):
        modelnet40_class_for(3)


def test_label_mapping_keeps_original_names_and_drops_unmapped():
    names = ["Corner sofa", "Radiator", "Coffee table", "Corner sofa"]
    assert modelnet40_label_mapping(names) == {"Corner sofa": "sofa", "Coffee table": "table"}


def test_every_table_entry_is_reachable():
    """A key that normalisation rewrites could never match; each one must map to its value."""
    for table in (EXACT_NAMES, HEAD_NOUNS):
        for key, target in table.items():
            assert modelnet40_class_for(key) == target, key


def test_class_mapper_for_each_label_map():
    assert class_mapper(None)("bar stool") == "bar stool"
    assert class_mapper("modelnet40")("bar stool") == "stool"
    assert class_mapper("modelnet40")("table fan") is None
    with pytest.raises(ValueError, match="unknown label_map 'shapenet'"):
        class_mapper("shapenet")
