"""The Family descriptor and registry (sgtrain.models.family): what the generic layers ask of a family."""

from __future__ import annotations

import pytest

from sgtrain.models.family import Family, family_of, registered, trusted_class, trusted_packages


def test_registry_holds_every_builtin_family_with_its_capabilities():
    fams = registered()
    assert list(fams) == sorted(fams)
    assert {n for n, f in fams.items() if f.w_space} >= {"stylegan", "stylegan2", "stylegan3"}
    assert {n for n, f in fams.items() if f.progressive} >= {"progan", "stylegan"}
    assert {n for n, f in fams.items() if f.input_transform} >= {"stylegan3"}
    assert not fams["dcgan"].w_space and fams["dcgan"].mapping_layer is None


def test_family_of_networks_and_mapping_layers():
    from sgtrain.models.dcgan import Generator as DG
    from sgtrain.models.stylegan2 import Discriminator, Generator

    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs={"num_layers": 2},
                  channel_base=64, channel_max=8)
    fam = family_of(G)
    assert fam.name == "stylegan2" and family_of(Discriminator).name == "stylegan2"
    assert family_of(DG).name == "dcgan" and family_of(object()) is None
    frozen = fam.mapping_layers(G, 1)
    assert frozen and all(n.startswith("mapping.fc0.") for n in frozen)
    assert fam.mapping_layers(G, 2) > frozen and fam.mapping_layers(G, 0) == set()


def test_names_are_checked():
    assert "dcgan" in registered()  # the real one first: the second below is refused, not registered
    with pytest.raises(ValueError, match="lower-case identifier"):
        Family(name="My GAN", display_name="x", package="x")
    with pytest.raises(ValueError, match="two families are named 'dcgan'"):
        Family(name="dcgan", display_name="x", package="somewhere.else")


def test_trust_is_the_users_word(monkeypatch):
    monkeypatch.delenv("SGTRAIN_FAMILIES", raising=False)
    assert trusted_class("sgtrain.models.stylegan2.networks.Generator")
    assert not trusted_class("sgtrain.training.run.train")  # sgtrain, but not a network module
    assert not trusted_class("mypkg.networks.Generator") and "mypkg" not in trusted_packages()
    assert not trusted_class("os.system") and not trusted_class("builtins.eval") and not trusted_class("x")
    monkeypatch.setenv("SGTRAIN_FAMILIES", "mypkg, other")
    assert trusted_class("mypkg.networks.Generator") and trusted_class("other.Generator")
    assert not trusted_class("mypkg.networks.Generator; import os")
