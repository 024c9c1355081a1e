"""The README's main job, measured: `tocoad demo` (both stages on the embedded toy data, `cpu` preset) in a fresh
process, its wall time and peak RSS, and the summary it prints. Writes results/demo.json.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/demo_cost.py
"""
import os, re, resource, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _results import write_result

def main():
    out = Path(tempfile.mkdtemp()) / 'tocoad_demo'; t = time.perf_counter()
    r = subprocess.run([str(Path(sys.executable).parent / 'tocoad'), 'demo', '--out', str(out), '--quiet'], capture_output=True, text=True,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    wall = time.perf_counter() - t
    if r.returncode: sys.exit(r.stderr[-3000:])
    per = {m.group(1): dict(image_auroc=float(m.group(2)), pixel_auroc=float(m.group(3)), aupro=float(m.group(4)), fit_s=int(m.group(5)))
           for m in re.finditer(r'\[demo\] (\w+): image AUROC ([\d.]+), pixel AUROC ([\d.]+), AUPRO ([\d.]+) \((\d+) s\)', r.stdout)}
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(r.stdout[-1500:]); print(f'wall {wall:.0f} s, peak RSS {rss:.1f} GB')
    write_result('demo', dict(what='tocoad demo (three toy categories, both stages, cpu preset), one fresh process on this machine', wall_s=round(wall), peak_rss_gb=round(rss, 1), categories=per))

if __name__ == '__main__': main()
