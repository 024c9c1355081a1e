"""Anomaly generators: determinism, exact masks, threshold control, image kinds, user texture folders."""
import numpy as np
import pytest
import torch
from conftest import write_image
from tocoad.generators import make_generator, check_generator, perlin_mask, rotate_base, PerlinGenerator

def g(s): return torch.Generator().manual_seed(s)

@pytest.fixture(scope='module')
def photo():
    from skimage import data
    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)

@pytest.mark.parametrize('name', ['perlin', 'cutpaste', 'nsa'])
@pytest.mark.parametrize('size', [224, 256])
@pytest.mark.parametrize('channels', [1, 3])
def test_generator_contract(photo, name, size, channels):
    img = torch.nn.functional.interpolate(photo[None], size=(size, size), mode='bilinear', antialias=True)[0]
    if channels == 1: img = img.mean(0, keepdim=True)
    gen = make_generator(name)
    for s in range(2):
        a = check_generator(gen, img, seed=s)  # seeded, outside-mask pixels == rotated base, label == mask.any()
        assert a.label == 1 and a.image.shape == img.shape

def test_different_seeds_differ(photo):
    gen = make_generator('perlin')
    assert not torch.equal(gen(photo, g(0)).mask, gen(photo, g(1)).mask)

def test_mask_area_grows_as_threshold_falls():
    area = lambda t: np.mean([perlin_mask((128, 128), t, generator=g(s)).mean().item() for s in range(30)])
    a = [area(t) for t in (0.7, 0.5, 0.3, 0.1)]
    assert all(x < y for x, y in zip(a, a[1:])), a

def test_anomaly_probability_zero_returns_rotated_normal_image(photo):
    gen = make_generator('perlin', anomaly_prob=0.0)
    out = gen(photo, g(4)); base = rotate_base(photo, gen.max_angle, generator=g(4))
    assert out.label == 0 and out.mask.sum() == 0 and torch.equal(out.image, base)

def test_texture_dir_is_used(tmp_path, photo):
    for i in range(3): write_image(tmp_path / 'dtd' / f't{i}.png', size=(64, 64), seed=i)
    gen = PerlinGenerator(texture_dir=tmp_path / 'dtd')
    assert gen.textures.files is not None and len(gen.textures.files) == 3
    check_generator(gen, photo[:, :128, :128], seed=0)

def test_bad_generator_name():
    with pytest.raises(ValueError, match='choose one of'): make_generator('draem')
