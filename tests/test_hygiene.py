"""The house rules that keep tocoad easy to change: no import cycles, no private names used across modules,
no machine paths in committed notebook outputs. (Notebook sizes: tests/test_docs.py; lint: ruff in tools/test.sh.)"""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = {p.stem: p for p in (ROOT / 'tocoad').glob('*.py') if p.stem != '_modidx'}

def tocoad_imports(path:Path)->set:
    "Modules of tocoad that `path` imports anywhere (top level or inside functions; TYPE_CHECKING-only imports excluded)."
    tree, out = ast.parse(path.read_text()), set()
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test) for n in ast.walk(node)}
    for n in ast.walk(tree):
        if id(n) in skip: continue
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ''
            if n.level == 1: names = [mod] if mod else [a.name for a in n.names]
            elif mod.startswith('tocoad'): names = [mod.split('.')[1]] if '.' in mod else [a.name for a in n.names]
            else: continue
            out |= {m for m in names if m in MODULES}
        elif isinstance(n, ast.Import):
            out |= {a.name.split('.')[1] for a in n.names if a.name.startswith('tocoad.') and a.name.split('.')[1] in MODULES}
    return out - {path.stem}

def find_cycle(graph:dict)->list|None:
    "A cycle in `graph` (module -> imported modules) as a list of modules, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)): return c
        state[m] = 'done'; stack.pop()
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c

def test_the_cycle_finder_finds_cycles():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a'] and find_cycle({'a': {'b'}, 'b': set()}) is None

def test_tocoad_imports_form_no_cycle():
    graph = {m: tocoad_imports(p) for m, p in MODULES.items()}
    assert graph['cli'] >= {'ablation', 'run'} and 'core' in graph['data'] and 'model' in graph['run']  # top-level, relative and in-function imports
    assert find_cycle(graph) is None, f'import cycle: {" -> ".join(find_cycle(graph))}'

def private_names()->dict:
    "Underscored names (functions, classes, attributes, module globals) defined in each tocoad module."
    out = {}
    for m, p in MODULES.items():
        for n in ast.walk(ast.parse(p.read_text())):
            name = (n.name if isinstance(n, (ast.FunctionDef, ast.ClassDef)) else n.attr if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                    else n.id if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) else None)
            if name and re.fullmatch(r'_[a-zA-Z]\w*', name): out.setdefault(name, set()).add(m)
    return out

def test_no_private_name_is_used_outside_its_module():
    private, bad = private_names(), []
    assert {'_check_bank', '_gather_in_order'} <= set(private)  # the scan sees module-private helpers
    for p in [*MODULES.values(), *(ROOT / 'tests').glob('*.py'), *(ROOT / 'benchmarks').glob('*.py'), *(ROOT / 'tools').glob('*.py')]:
        here = p.stem if p.parent.name == 'tocoad' else None
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ImportFrom) and ((n.module or '').startswith('tocoad') or n.level):
                bad += [f'{p.relative_to(ROOT)}:{n.lineno} imports {a.name}' for a in n.names if re.fullmatch(r'_[a-zA-Z]\w*', a.name)]
            if isinstance(n, ast.Attribute) and n.attr in private and here not in private[n.attr]:
                bad.append(f'{p.relative_to(ROOT)}:{n.lineno} uses .{n.attr} (private to {", ".join(sorted(private[n.attr]))})')
    assert not bad, '\n'.join(bad)

MACHINE_PATH = re.compile(r'(/work/|/tmp/|/home/|/root/|/Users/|[A-Za-z]:\\\\Users)')

@pytest.mark.parametrize('nb', sorted((ROOT / 'nbs').glob('*.ipynb')), ids=lambda p: p.name)
def test_committed_outputs_hold_no_machine_paths(nb):
    found = []
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        for o in c.get('outputs', []):
            text = ''.join(o.get('text', [])) + ''.join(''.join(v) for k, v in o.get('data', {}).items() if k.startswith('text/') and isinstance(v, list))
            found += [f'cell {i}: …{text[max(0, m.start() - 40):m.start() + 60]}…' for m in MACHINE_PATH.finditer(text)][:1]
    assert not found, '\n'.join(found)

def test_nbdev_test_skips_the_slow_and_cuda_cells():
    "nbdev splits tst_flags on spaces: 'slow|cuda' was one flag that matched no cell, so every flagged cell ran."
    import os
    from nbdev.config import get_config
    here = os.getcwd(); os.chdir(ROOT)
    try: assert set(get_config().tst_flags.split()) == {'slow', 'cuda'}
    finally: os.chdir(here)
