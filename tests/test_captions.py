"""Caption templates, synonyms and per-object captions."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from cg3d.data.captions import TEMPLATES, caption_name, captions_for, class_prompts, fill, phrase, synonyms

MODELNET40 = (
    "airplane bathtub bed bench bookshelf bottle bowl car chair cone cup curtain desk door dresser "
    "flower_pot glass_box guitar keyboard lamp laptop mantel monitor night_stand person piano plant "
    "radio range_hood sink sofa stairs stool table tent toilet tv_stand vase wardrobe xbox"
).split()


def test_about_sixty_distinct_templates_each_with_one_slot():
    assert 55 <= len(TEMPLATES) <= 70
    assert len(set(TEMPLATES)) == len(TEMPLATES)
    for template in TEMPLATES:
        assert template.count("{}") == 1, template
        assert "{" not in template.replace("{}", "") and "}" not in template.replace("{}", ""), template


def test_class_prompts_fill_every_template_with_the_class_name():
    prompts = class_prompts("night_stand")
    assert len(prompts) == len(TEMPLATES)
    assert len(set(prompts)) == len(prompts)
    assert all("night stand" in prompt for prompt in prompts)
    assert "a photo of a night stand." in prompts


def test_articles_follow_the_sound_of_the_name():
    assert "a photo of an airplane." in class_prompts("airplane")
    assert "a photo of a unicycle." in class_prompts("unicycle")
    assert "a photo of stairs." in class_prompts("stairs")
    assert fill("A {} on a table.", "owl") == "An owl on a table."
    assert fill("the shape of the {}.", "owl") == "the shape of the owl."


@pytest.mark.parametrize("category", MODELNET40)
def test_every_modelnet40_class_gives_clean_captions(category):
    captions = captions_for(category, count=8, seed=f"modelnet40/{category}_0001")
    assert len(captions) == 8 and len(set(captions)) == 8
    for caption in captions:
        assert "{}" not in caption and "_" not in caption and "  " not in caption
        assert not re.search(r"\ba an?\b|\ban a\b", caption), caption


def test_captions_are_deterministic_per_object_id_and_vary_between_ids():
    first = captions_for("chair", name="Office chair", tags=("Seat",), count=8, seed="sh3d/chair-17")
    assert first == captions_for("chair", name="Office chair", tags=("Seat",), count=8, seed="sh3d/chair-17")
    others = {tuple(captions_for("chair", count=8, seed=f"sh3d/chair-{i}")) for i in range(10)}
    assert len(others) > 5


def test_synonyms_appear_across_object_ids():
    seen = " ".join(caption for i in range(20) for caption in captions_for("sofa", count=8, seed=str(i)))
    assert "couch" in seen and "settee" in seen and "sofa" in seen


def test_object_name_and_informative_tags_are_used():
    captions = captions_for(
        "bed", name="Iron bed 140x190", tags=("Blend Swap", "Bed", "Double", "Bedroom"), count=12, seed="x"
    )
    text = " ".join(captions)
    assert "iron bed" in text and "140x190" not in text
    assert "(double, bedroom)" in text
    assert "blend swap" not in text.lower()
    assert "(bed" not in text  # a tag repeating the category says nothing new
    assert any(caption.endswith("bed.") for caption in captions)  # plain captions remain


def test_name_equal_to_a_synonym_adds_no_extra_subject():
    captions = captions_for("sofa", name="Couch", count=3, seed="s")
    assert [sum(word in caption for word in ("sofa", "couch", "settee")) for caption in captions] == [1, 1, 1]


def test_synonym_table_is_symmetric_and_each_name_in_one_group():
    assert "couch" in synonyms("sofa") and "sofa" in synonyms("couch")
    assert "bookcase" in synonyms("bookshelf") and "bookshelf" in synonyms("Bookcase")
    assert "sofa" not in synonyms("sofa")
    assert synonyms("table") == () and synonyms("desk") == ()  # a desk is not a table
    lines = files("cg3d.data").joinpath("caption_synonyms.txt").read_text().splitlines()
    groups = [line.split(",") for line in lines if line.strip() and not line.startswith("#")]
    names = [phrase(name) for group in groups for name in group]
    assert len(names) == len(set(names))


def test_phrase_makes_names_caption_text():
    assert phrase("flower_pot") == "flower pot"
    assert phrase("Bed 140x190") == "bed"
    assert phrase("Chair (2)") == "chair"
    assert phrase("TV-stand") == "tv stand"


def test_asking_for_more_captions_than_exist_is_refused():
    most = len(TEMPLATES)  # "chair" has no synonyms: one subject, each template once
    assert len(captions_for("chair", count=most, seed="a")) == most
    with pytest.raises(ValueError, match=f"only {most} distinct captions exist"):
        captions_for("chair", count=most + 1, seed="a")


@pytest.mark.parametrize("category", ["", "___", " - "])
def test_category_without_letters_or_digits_is_refused(category):
    with pytest.raises(ValueError, match="no words"):
        captions_for(category, seed="a")


def test_synset_id_categories_are_captioned_with_their_words():
    captions = captions_for("03001627", "03001627", count=4, seed="a")
    assert len(captions) == 4 and all("chair" in caption for caption in captions)
    assert caption_name("04379243") == "table"
    assert all("chair" in prompt for prompt in class_prompts("03001627"))


@pytest.mark.parametrize("category, name", [("椅子", "椅子"), ("стул", "стул"), ("Stühle", "stühle"), ("1234", "1234")])
def test_categories_without_latin_letters_are_captioned_as_written(category, name):
    assert caption_name(category) == name
    captions = captions_for(category, category, count=len(TEMPLATES), seed="a")
    assert len(set(captions)) == len(TEMPLATES) and all(name in caption for caption in captions)
