"""Feature extractor weights: the offline ImageNet weights are real; missing weights fail fast and say how to fix it."""
import time
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from tocoad.core import TocoadError
from tocoad.backbone import offline_classifier, FeatureExtractor, save_backbone

def _top1(model, img):
    x = TF.resize(torch.from_numpy(img).permute(2, 0, 1).float().div(255), [224, 224], antialias=True)
    with torch.no_grad(): return int(model((x[None] - 0.5) / 0.5).argmax())

def test_offline_weights_are_imagenet_weights():
    from skimage import data
    m = offline_classifier()
    assert _top1(m, data.chelsea()) in range(281, 286)  # ImageNet's domestic cats (285: Egyptian cat)
    assert _top1(m, data.coffee()) == 967  # espresso

def test_imagenet_without_hub_fails_fast_with_the_ways_out():
    t = time.time()
    with pytest.raises(TocoadError) as e: FeatureExtractor('resnet18', 'imagenet')
    assert time.time() - t < 20
    msg = str(e.value)
    assert "weights='offline'" in msg and 'safetensors' in msg and "weights='random'" in msg

def test_weights_file_must_fit(tmp_path):
    torch.manual_seed(1); saved = FeatureExtractor('resnet18', 'random'); p = save_backbone(saved, tmp_path / 'r18.safetensors')
    torch.manual_seed(2); loaded = FeatureExtractor('resnet18', str(p))  # another seed: only the file can make them equal
    for (n, a), (m, b) in zip(saved.named_parameters(), loaded.named_parameters()): assert n == m and torch.equal(a, b), n
    assert not torch.equal(saved.body.conv1.weight, FeatureExtractor('resnet18', 'random').body.conv1.weight)  # a fresh one differs
    with pytest.raises(TocoadError, match='do not fit'): FeatureExtractor('resnet50', str(p))

def test_pickled_checkpoint_is_not_unpickled(tmp_path):
    import pickle
    class Boom:
        def __reduce__(self): return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / 'pwned'),))
    bad = tmp_path / 'evil.pth'; bad.write_bytes(pickle.dumps({'conv1.weight': Boom()}))
    with pytest.raises(TocoadError, match='not a plain tensor checkpoint'): FeatureExtractor('resnet18', str(bad))
    assert not (tmp_path / 'pwned').exists()

def test_layers_map_by_stride():
    f = FeatureExtractor('tf_efficientnet_lite0', 'offline', layers=('layer2', 'layer3'))
    with torch.no_grad(): out = f(torch.zeros(1, 3, 224, 224))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {'layer2': (28, 28), 'layer3': (14, 14)}
    assert f.mean == (0.5, 0.5, 0.5)
