"""Recipe validation: every problem at once, each with its JSON path and a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganreg.errors import RecipeError, UserError
from ganreg.plugins import load_plugin
from ganreg.recipe import apply_overrides, load_recipe, recipe_schema, validate_recipe
from ganreg.registry import Registry


@pytest.fixture
def registry() -> Registry:
    import ganreg.builtin
    import ganreg_dfgan.plugin

    reg = Registry()
    load_plugin(reg, ganreg.builtin, "core", strict=True)
    load_plugin(reg, ganreg_dfgan.plugin, "dfgan", strict=True)
    return reg


def base_recipe() -> dict:
    return {
        "version": 1,
        "data": {"source": "shapes", "image_size": 32, "num_images": 64},
        "text_encoder": {"name": "lstm"},
        "generator": {"name": "dfgan", "params": {"nf": 8}},
        "discriminator": {"name": "dfgan", "params": {"nf": 8}},
        "losses": [{"name": "hinge"}, {"name": "hinge_generator"}, {"name": "magp"}],
        "train": {"steps": 2, "batch_size": 8},
    }


def problems(raw: dict, registry: Registry) -> dict[str, tuple[str, str | None]]:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(raw, registry)
    return {path: (msg, fix) for path, msg, fix in exc.value.problems}


def test_valid_recipe(registry: Registry) -> None:
    r = validate_recipe(base_recipe(), registry)
    assert r.train.steps == 2 and r.text_encoder.mode == "pretrain"


def test_all_problems_at_once_with_paths(registry: Registry) -> None:
    raw = base_recipe()
    raw["generator"]["name"] = "dfgn"  # typo
    raw["train"]["batch_size"] = "sixteen"  # wrong type
    raw["train"]["bacth_size"] = 16  # unknown key
    raw["train"]["d_steps"] = 0  # out of range
    raw["discriminator"]["params"]["nf"] = -3  # out of range, in a component's params
    raw["train"]["lr"] = 1e-4  # a key of another section
    found = problems(raw, registry)
    assert found["train.lr"] == ("unknown key", "'lr' is a key of text_encoder.pretrain, optim.generator, optim.discriminator: move it there")
    assert (found["train.d_steps"][1] or "").startswith("give a value that fits what it is: ")
    assert "did you mean 'dfgan'" in (found["generator.name"][1] or "")
    assert "train.batch_size" in found and "integer" in found["train.batch_size"][0]
    assert found["train.bacth_size"] == ("unknown key", "did you mean 'batch_size'?")
    assert "train.d_steps" in found and "greater than or equal to 1" in found["train.d_steps"][0]
    assert "n_critic" in (found["train.d_steps"][1] or "")  # the field's description is the fix
    assert "discriminator.params.nf" in found and "conv_img gives nf channels" in (found["discriminator.params.nf"][1] or "")


def test_infinite_numbers_and_names_that_leave_the_output_folder_are_refused(registry: Registry) -> None:
    """An lr of Infinity validated and diverged at step 2; name '../escape' made the run outside output.dir."""
    raw = base_recipe()
    raw["optim"] = {"generator": {"lr": float("inf")}}
    raw["name"] = "../escape"
    raw["output"] = {"name": ".."}
    found = problems(raw, registry)
    assert "finite number" in found["optim.generator.lr"][0]
    assert "'../escape' is no folder of its own" in found["name"][0] and "'..' is no folder of its own" in found["output.name"][0]
    raw = base_recipe()
    raw["name"] = "ablation/lr1e-4"  # a subfolder of output.dir groups runs: fine
    assert validate_recipe(raw, registry).name == "ablation/lr1e-4"


def test_true_and_false_are_no_numbers(registry: Registry) -> None:
    """pydantic reads true / false as 1 / 0: "ema_decay": false, meant as "no EMA", trained with decay 0, and
    "steps": true trained one step. Each is named once, with null offered where the field takes it."""
    raw = base_recipe()
    raw["train"].update(steps=True, ema_decay=False, max_minutes=False, channels_last=True)
    raw["optim"] = {"generator": {"betas": [False, 0.9]}}
    raw["data"]["image_size"] = True
    raw["generator"]["params"]["nf"] = True  # a plugin's params: the same check, from the core
    found = problems(raw, registry)
    assert found["train.ema_decay"] == ("false is not a number", "give a number, or null: EMA of G's weights; null disables")
    assert found["train.steps"][0] == "true is not a number" and (found["train.steps"][1] or "").startswith("give a number, or null")
    assert found["train.max_minutes"][0] == "false is not a number"  # not pydantic's "greater than 0" as well
    assert found["optim.generator.betas.0"][0] == "false is not a number"
    assert found["data.image_size"][0] == "true is not a number" and (found["data.image_size"][1] or "").startswith("give a number:")
    assert found["generator.params.nf"][0] == "true is not a number"
    assert len(found) == 6  # channels_last is a switch: true is its value
    with pytest.raises(RecipeError) as exc:
        validate_recipe(raw, registry)
    assert len(exc.value.problems) == 6  # once each
    raw = base_recipe()
    raw["train"].update(ema_decay=None, channels_last=1)
    assert validate_recipe(raw, registry).train.ema_decay is None


def test_unknown_loss_path_has_index(registry: Registry) -> None:
    raw = base_recipe()
    raw["losses"][1]["name"] = "hinge_gen"
    found = problems(raw, registry)
    assert "losses.1.name" in found


def test_base_recipe_and_overrides(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "base.json").write_text(json.dumps(base_recipe()))
    (tmp_path / "child.json").write_text(json.dumps({"base": "base.json", "train": {"batch_size": 4}}))
    r = load_recipe(tmp_path / "child.json", registry, ["train.steps=7", "losses.2.weight=0.5", "output.name=x"])
    assert r.train.batch_size == 4 and r.train.steps == 7 and r.losses[2].weight == 0.5
    assert r.generator.params == {"nf": 8} and r.output.name == "x" and r.name == "child"


def test_a_derived_recipe_can_swap_a_component(tmp_path: Path, installed_registry: Registry) -> None:
    """The base's params belong to the base's component: naming another one starts from its defaults."""
    registry = installed_registry
    base_generator = base_recipe()["generator"]["name"]
    (tmp_path / "base.json").write_text(json.dumps({**base_recipe(), "generator": {
        "name": base_generator, "params": {"nf": 8}, "weights": str(tmp_path / "G.pth")}}))
    other = "dcgan_cls:dcgan_cls"  # a generator whose params have ngf (set below)
    assert registry.resolve("generator", base_generator).qualified != other
    (tmp_path / "swap.json").write_text(json.dumps({"base": "base.json", "generator": {"name": other}}))
    swapped = load_recipe(tmp_path / "swap.json", registry).generator
    assert swapped.params == {} and swapped.weights is None  # the base's weights were for its own component
    over = load_recipe(tmp_path / "base.json", registry, ["generator.params.ngf=8", f"generator.name={other}"])
    assert over.generator.name == other and over.generator.params == {"ngf": 8} and over.generator.weights is None
    qualified = registry.resolve("generator", base_generator).qualified
    (tmp_path / "same.json").write_text(json.dumps({"base": "base.json", "generator": {"name": qualified}}))
    assert load_recipe(tmp_path / "same.json", registry).generator.params == {"nf": 8}  # the same component


def test_override_errors() -> None:
    with pytest.raises(UserError):
        apply_overrides({}, ["no_equals_sign"])
    with pytest.raises(UserError):
        apply_overrides({"losses": []}, ["losses.3.weight=1"])


def test_json_syntax_error_names_line(tmp_path: Path, registry: Registry) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"version": 1,\n "train": {,}}')
    with pytest.raises(RecipeError) as exc:
        load_recipe(p, registry)
    assert exc.value.problems[0][0].startswith("line 2")


def test_schema_describes_sections() -> None:
    schema = recipe_schema()
    assert {"data", "generator", "losses", "train", "optim"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_every_recipe_field_has_a_description() -> None:
    """Editors show these on hover, and `validate` gives a field's description as the fix for a wrong value."""
    schema = recipe_schema()
    defs = schema.get("$defs", {})

    def resolve(node: dict) -> dict:
        return defs[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    undescribed: list[str] = []

    def walk(node: dict, path: str) -> None:
        for key, prop in resolve(node).get("properties", {}).items():
            if not prop.get("description"):
                undescribed.append(path + key)
            for candidate in [prop, *prop.get("anyOf", []), *prop.get("allOf", [])]:
                target = resolve(candidate)
                if "properties" in target:
                    walk(target, f"{path}{key}.")
                items = target.get("items")
                if isinstance(items, dict) and "properties" in resolve(items):
                    walk(items, f"{path}{key}[].")

    walk(schema, "")
    assert undescribed == []
    assert len(defs) >= 8  # the walk reached the nested sections (optim.generator.schedule, ...)


def test_bundled_recipes_validate(installed_registry: Registry) -> None:
    for path in sorted(Path(__file__).parents[2].joinpath("recipes").glob("*.json")):
        load_recipe(path, installed_registry)


def test_a_sections_own_check_gets_no_description_as_its_fix(registry: Registry) -> None:
    raw = base_recipe()
    raw["data"] = {"source": "shapes", "image_size": 32, "flip": True}
    found = problems(raw, registry)
    assert "flip must be false" in found["data"][0] and found["data"][1] is None


def test_a_typo_in_the_plugin_part_gets_both_hints(registry: Registry) -> None:
    raw = base_recipe()
    raw["losses"][0]["name"] = "dfgna:hinge"
    message, fix = problems(raw, registry)["losses.0.name"]
    assert "no plugin named 'dfgna' is installed" in (fix or "") and "did you mean 'dfgan:hinge'" in (fix or "")
