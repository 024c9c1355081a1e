"""Shared fixtures: tiny datasets in every supported layout, and the real MVTec AD bottle data where present."""
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # before timm/huggingface_hub are imported: fail fast without a hub
os.environ.setdefault('MPLBACKEND', 'Agg')
import csv
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

from tocoad.core import data_root
MVTEC = data_root('mvtec_ad')  # $TOCOAD_DATA, else shared/data beside the project
needs_mvtec = pytest.mark.skipif(not (MVTEC / 'bottle').is_dir(), reason=f'real MVTec AD data not found at {MVTEC} (set TOCOAD_DATA, or put it in shared/data beside the project)')

def write_image(path, size=(40, 40), seed=0, mode='RGB', ext=None):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3) if mode == 'RGB' else (size[1], size[0])) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path

def write_mask(path, size=(40, 40), box=(10, 10, 20, 20)):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8); x0, y0, x1, y1 = box; m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)
    return path

@pytest.fixture
def mvtec_tiny(tmp_path):
    root = tmp_path / 'mvtec'; c = root / 'widget'
    for i in range(4): write_image(c / 'train' / 'good' / f'{i:03d}.png', seed=i)
    for i in range(2): write_image(c / 'test' / 'good' / f'{i:03d}.png', seed=10 + i)
    for i in range(2):
        write_image(c / 'test' / 'crack' / f'{i:03d}.png', seed=20 + i)
        write_mask(c / 'ground_truth' / 'crack' / f'{i:03d}_mask.png')
    return root

@pytest.fixture
def visa_tiny(tmp_path):
    root = tmp_path / 'visa'; rows = []
    for i in range(3):
        p = write_image(root / 'candle' / 'Data' / 'Images' / 'Normal' / f'{i:04d}.JPG', seed=i)
        rows.append(dict(object='candle', split='train' if i < 2 else 'test', label='normal', image=str(p.relative_to(root)), mask=''))
    for i in range(2):
        p = write_image(root / 'candle' / 'Data' / 'Images' / 'Anomaly' / f'{i:03d}.JPG', seed=30 + i)
        m = write_mask(root / 'candle' / 'Data' / 'Masks' / 'Anomaly' / f'{i:03d}.png')
        rows.append(dict(object='candle', split='test', label='anomaly', image=str(p.relative_to(root)), mask=str(m.relative_to(root))))
    (root / 'split_csv').mkdir(parents=True)
    with open(root / 'split_csv' / '1cls.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, ['object', 'split', 'label', 'image', 'mask']); w.writeheader(); w.writerows(rows)
    return root

@pytest.fixture
def btad_tiny(tmp_path):
    root = tmp_path / 'btad'; c = root / '03'
    for i in range(3): write_image(c / 'train' / 'ok' / f'{i:04d}.bmp', seed=i)
    write_image(c / 'test' / 'ok' / '0000.bmp', seed=5)
    write_image(c / 'test' / 'ko' / '0001.bmp', seed=6); write_mask(c / 'ground_truth' / 'ko' / '0001.png')
    return root

@pytest.fixture
def folder_tiny(tmp_path):
    root = tmp_path / 'folder'; c = root / 'part'
    for i in range(3): write_image(c / 'train' / f'{i}.png', seed=i, mode='L')
    write_image(c / 'test' / 'good' / 'g.png', seed=7, mode='L')
    write_image(c / 'test' / 'dent' / 'd.png', seed=8, mode='L'); write_mask(c / 'masks' / 'dent' / 'd.png')
    return root
