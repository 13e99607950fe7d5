"""sgtrain-recipe: run a latent recipe, a YAML file of named steps chained by name (docs/studio.md)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sgtrain.latent._cli import run
from sgtrain.latent.recipe import STEP_TYPES, RecipeError, check_recipe, load_recipe, run_recipe

EPILOG = """examples:
  sgtrain-recipe examples/character_pipeline.yaml
  sgtrain-recipe examples/character_pipeline.yaml networks.second=runs/other steps.characters.seeds=0-3 out=out/try2
  sgtrain-recipe my.yaml --dry-run          # check the recipe (names, keys, references) without running it
step types: """ + ", ".join(STEP_TYPES) + """
Each step writes to OUT/<step name>/: images as <label>.png, latents as w.npz (key 'w', NVlabs' projected_w layout);
a sheet step writes sheet.png. OUT/recipe.yaml records the recipe as run (overrides applied).
"""


def _main(args: argparse.Namespace) -> None:
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = load_recipe(args.recipe, args.overrides)
        if args.device is not None:
            cfg.device = args.device
        if args.dry_run:
            for name, kind, params in check_recipe(cfg):
                keys = ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("type", "save"))
                print(f"{name}: {kind}({keys})")
            print(f"recipe OK; outputs would go to {cfg.out}")
            return
        run_recipe(cfg)
    except OmegaConfBaseException as e:
        raise RecipeError(f"cannot read recipe '{args.recipe}': {e}") from e
    except Exception as e:
        if type(e).__module__.startswith("yaml"):
            raise RecipeError(f"recipe '{args.recipe}' is not valid YAML: {e}") from e
        raise


class _Parser(argparse.ArgumentParser):
    """Options may come between or after the KEY=VALUE overrides."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        return self.parse_intermixed_args(args, namespace)


def main(argv: Sequence[str] | None = None) -> None:
    p = _Parser(prog="sgtrain-recipe", description="Run a latent recipe: sample, load, mix, crop, "
                                "project, apply directions and make contact sheets in one YAML file of named steps.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="OmegaConf dot-list overrides, e.g. steps.characters.seeds=0-3 networks.emoji=runs/x")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the recipe's device, else auto)")
    p.add_argument("--dry-run", action="store_true", help="validate the recipe and print the plan; run nothing")
    run(_main, p, argv)


if __name__ == "__main__":
    main()
