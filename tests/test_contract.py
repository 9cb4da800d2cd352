"""The registry contract: what every registered model must satisfy, so a new variant or family
is caught here when it forgets something (ADDING_A_MODEL.md)."""
import ast
import re
from pathlib import Path

import pytest

import keras_classics as kc
from keras_classics import analysis, convert, registry, weights
from keras_classics.transfer import backbone_stages
from conftest import standard_model, standard_models

ROOT = Path(__file__).resolve().parents[1]
MODELS_PAGE = (ROOT / "docs" / "models.md").read_text()


def zoo_table_names():
    """The backticked names in the first column of the zoo table of docs/models.md."""
    section = MODELS_PAGE.split("## The zoo", 1)[1]
    table = section[section.index("\n| name |") + 1:].split("\n\n")[0]
    return {n for row in table.splitlines()[2:] for n in re.findall(r"`([a-z0-9_]+)`",
                                                                     row.split("|")[1])}


@pytest.mark.parametrize("name", standard_models(kc.list_models()))
def test_registered_model_keeps_the_contract(name):
    info = kc.model_info(name)
    model = standard_model(name)  # its standard configuration
    assert model.name == name and info.family in {f.__name__.rsplit(".", 1)[-1]
                                                  for f in kc.models.FAMILIES}
    assert info.paper and info.description and info.dataset in ("imagenet", "cifar")
    assert model.input_shape[1:3] == (info.default_size, info.default_size)

    # analysis counts every layer, ours included: no custom layer falls to "0 ops" unseen
    ours = {type(layer) for layer in model.layers
            if type(layer).__module__.startswith("keras_classics")}
    for cls in ours:
        assert hasattr(cls, "op_counts") or getattr(cls, "counted_as", None), cls
    rows = {row.name: row for row in analysis.profile(model).rows}
    assert sum(row.params for row in rows.values()) == model.count_params()
    for layer in model.layers:
        if type(layer) in ours:
            assert rows[layer.name].macs + rows[layer.name].other_ops > 0, layer.name

    # transfer stages come from the layer names: several, none taken by default
    stages = backbone_stages(model)
    assert len(stages) >= 3 and min(stages) == 1, sorted(stages)
    assert sum(len(layers) for layers in stages.values()) == \
        sum(1 for layer in model.layers if layer.weights)

    # the documentation lists it
    assert name in zoo_table_names(), f"{name} is not in the zoo table of docs/models.md"
    assert info.family in registry.list_models.__doc__


@pytest.mark.parametrize("name", sorted(weights.SOURCES))
def test_pretrained_record_is_complete(name):
    record = kc.model_info(name).weights
    assert record is weights.SOURCES[name] and record.name == name
    assert record.url.startswith("https://") and record.file_hash
    assert record.preprocessing in ("caffe", "tf", "torch") and record.input_size >= 32
    if record.source == "keras":  # a published .h5 pair, loaded as it is
        assert record.notop_url.startswith("https://") and record.notop_hash
    else:  # a PyTorch checkpoint: the converter must know its layout
        assert record.source in ("torchvision", "timm") and record.layout in convert.HEADS
    if record.source != "timm":  # timm's legacy SENet records publish no top-1 of their own
        assert 40 < record.top1 < 100


def test_every_weights_name_is_registered():
    assert set(weights.SOURCES) <= set(kc.list_models())
    for paper, variant in weights.PRETRAINED_VARIANT.items():
        assert paper in kc.list_models() and (variant is None or variant in weights.SOURCES)


def test_family_modules_export_what_they_register():
    for family in kc.models.FAMILIES:
        for builder_name in family.__all__:
            assert builder_name in kc.models.__all__ and builder_name in kc.__all__
    registered = {info.builder for info in registry.MODELS.values()}
    for name in kc.models.__all__:
        builder = getattr(kc, name)
        assert builder.__doc__, name
        # a public named builder is registered (the generic ones are reached through patterns)
        assert builder in registered or builder.__name__ in (
            "VGG", "ResNet", "CifarResNet", "WideResNet", "DenseNet", "DenseNetBC"), name


def test_the_guides_one_line_adds_a_variant():
    """ADDING_A_MODEL.md's example, run in a copy of resnet.py's namespace: one line gives a
    registered, exported-by-name, buildable model that keeps the contract."""
    from keras_classics.models import resnet

    guide = (ROOT / "ADDING_A_MODEL.md").read_text()
    example = re.search(r"```python\n# keras_classics/models/resnet.py\n(.*?)```", guide,
                        re.S).group(1)
    namespace = dict(vars(resnet))
    assert "resnet200" not in registry.MODELS
    exec(example, namespace)
    try:
        builder = namespace["ResNet200"]
        assert kc.model_info("resnet200").builder is builder and builder.__name__ == "ResNet200"
        assert kc.model_info("resnet200").family == "resnet"
        assert "resnet200" in kc.list_models("resnet")
        model = kc.get_model("resnet200", include_top=False, input_shape=(32, 32, 3))
        assert model.name == "resnet200" and len(backbone_stages(model)) == 5
        with pytest.raises(ValueError, match="resnet200: no public ImageNet weights"):
            builder(weights="imagenet")  # the variant's own name is its weights key
    finally:
        registry.MODELS.pop("resnet200", None)


# ---- imports point one way ------------------------------------------------------------
def source_modules():
    """{module: file} of keras_classics (recipes/ installs as keras_classics.recipes), bench."""
    found = {}
    for base, package in ((ROOT / "keras_classics", "keras_classics"),
                          (ROOT / "recipes", "keras_classics.recipes"),
                          (ROOT / "bench", "bench")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            found[".".join([package, *parts[:-1 if parts[-1] == "__init__" else None]])] = path
    return found


def imported(name, path, known):
    """The known modules ``name`` imports, at the top or inside functions (bench's scripts
    import their siblings by bare name)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                module = ".".join(parts[:len(parts) - node.level + 1] +
                                  ([node.module] if node.module else []))
            elif name.startswith("bench.") and f"bench.{node.module}" in known:
                module = f"bench.{node.module}"
            else:
                module = node.module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def import_cycles(graph):
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_import_cycle_in_the_package_or_bench():
    known = source_modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    # the walk sees real edges: weights reads files through assign, the benchmarks share timing
    assert "keras_classics.assign" in graph["keras_classics.weights"]
    assert "bench.timing" in graph["bench.run"] and "bench.timing" in graph["bench.where_time_goes"]
    assert "keras_classics.recipes.base" in graph["keras_classics.recipes.zfnet"]
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    # and a cycle is found when there is one (convert importing weights back)
    graph["keras_classics.convert"] = graph["keras_classics.convert"] | {"keras_classics.weights"}
    assert ["keras_classics.weights", "keras_classics.convert", "keras_classics.weights"] in \
        import_cycles(graph)
