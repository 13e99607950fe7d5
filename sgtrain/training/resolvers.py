"""The ``sgtrain.*`` OmegaConf resolvers of the training configs (``${sgtrain.data:resolution}``...) and the
registration of the schema in Hydra's ConfigStore."""

from __future__ import annotations

import ast
import functools
import operator
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sgtrain.errors import ConfigError

from .schema import TrainSchema


def _basename(path: Any) -> str:
    """``sgtrain.basename`` resolver: a short name for a dataset path or URL pattern."""
    if path is None:
        return "data"
    s = str(path).rstrip("/")
    if s.endswith(".tar") or "{" in s:
        s = os.path.dirname(s) or s
    return os.path.basename(s) or "data"


def _dataset_name(*, _root_: DictConfig) -> str:
    """``sgtrain.dataset_name`` resolver: dataset.name, else the last component of dataset.path ('nodata')."""
    ds = _root_.dataset
    if ds.name:
        return str(ds.name)
    if OmegaConf.is_missing(ds, "path"):
        return "nodata"
    return _basename(ds.path)


@functools.lru_cache(maxsize=16)
def _card_of(path: str) -> dict[str, Any]:
    from sgtrain.data.stream import resolve_shards

    try:
        _, card = resolve_shards(path)
    except (FileNotFoundError, OSError, ValueError) as err:
        raise ConfigError(f"dataset.path={path!r}: {err}; pack images first with `sgtrain-data pack SRC OUT` and "
                          "pass dataset.path=OUT") from err
    if card is None:
        raise ConfigError(f"dataset.path={path!r} has no dataset.json next to its shards, so the networks cannot be "
                          "sized from it: put the dataset.json written by `sgtrain-data pack` beside the shards")
    return card.to_dict()


def _data(key: str, *, _root_: DictConfig) -> int | list[int]:
    """``sgtrain.data`` resolver: ``resolution`` (model.resolution, else the data's longer side), ``channels``,
    ``c_dim`` (0 with dataset.cond=false) and ``init_res`` ([h0, w0] of a W x H network's 4x4 level, [4, 4] for
    square data; :func:`sgtrain.data.card.init_res_of`) of the training data, for the family configs' keywords."""
    if key == "resolution" and _root_.model.get("resolution") is not None:
        return int(_root_.model.resolution)
    if key == "init_res" and OmegaConf.is_missing(_root_.dataset, "path") and _root_.model.get("resolution"):
        return [4, 4]  # a square network sized by model.resolution alone
    if OmegaConf.is_missing(_root_.dataset, "path"):
        raise ConfigError(f"${{sgtrain.data:{key}}} needs the data: pass dataset.path=DIR (a directory written by "
                          "`sgtrain-data pack SRC DIR`)")
    card = _card_of(str(_root_.dataset.path))
    if key == "resolution":
        return int(card["resolution"])
    if key == "channels":
        return int(card["channels"])
    if key == "c_dim":
        return 0 if _root_.dataset.cond is False else int(card.get("c_dim", 0) or 0)
    if key == "init_res":
        from sgtrain.data.card import init_res_of, size_of

        w, h = size_of(card)
        if w == h:
            return [4, 4]
        try:
            return init_res_of(w, h)
        except ValueError as err:
            raise ConfigError(f"dataset.path={_root_.dataset.path}: {err}; repack the images with `sgtrain-data pack "
                              "... --resolution WxH` at such a size") from err
    raise ConfigError(f"${{sgtrain.data:{key}}}: unknown key {key!r}; use resolution, channels, c_dim or init_res")


_EVAL_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
             ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval(expr: Any) -> float:
    """``sgtrain.eval`` resolver: the value of an arithmetic expression of numbers (``+ - * / // **``, parentheses),
    for NVlabs' batch-dependent defaults, e.g. ``${sgtrain.eval:'${train.batch} * 10 / 32'}``. Nothing else is
    evaluated (no names, calls or attributes)."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _EVAL_OPS:
            return _EVAL_OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _EVAL_OPS:
            return _EVAL_OPS[type(node.op)](value(node.operand))
        raise ConfigError(f"${{sgtrain.eval:{expr}}}: only numbers and + - * / // ** are allowed")

    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"${{sgtrain.eval:{expr}}}: not an arithmetic expression ({err.msg})") from err
    return value(tree.body)


def _reversed(values: Any) -> list[Any]:
    """``sgtrain.reversed`` resolver: a list in reverse order (R3GAN's D takes G's stage lists reversed),
    e.g. ``${sgtrain.reversed:${model.WidthPerStage}}``."""
    return list(reversed(list(values)))


def _required(message: str) -> Any:
    """``sgtrain.required`` resolver: a value a preset cannot default; resolving it fails with ``message`` (a plain
    ``???`` would not do: Hydra keeps the earlier value when a preset merges ``???`` over it)."""
    raise ConfigError(str(message))


def register_configs() -> None:
    """Register the schema in Hydra's ConfigStore and the ``sgtrain.*`` resolvers (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("sgtrain.basename"):
        OmegaConf.register_new_resolver("sgtrain.basename", _basename)
    if not OmegaConf.has_resolver("sgtrain.dataset_name"):
        OmegaConf.register_new_resolver("sgtrain.dataset_name", _dataset_name)
    if not OmegaConf.has_resolver("sgtrain.data"):
        OmegaConf.register_new_resolver("sgtrain.data", _data)
    if not OmegaConf.has_resolver("sgtrain.required"):
        OmegaConf.register_new_resolver("sgtrain.required", _required)
    if not OmegaConf.has_resolver("sgtrain.reversed"):
        OmegaConf.register_new_resolver("sgtrain.reversed", _reversed)
    if not OmegaConf.has_resolver("sgtrain.eval"):
        OmegaConf.register_new_resolver("sgtrain.eval", _eval)
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)


register_configs()
