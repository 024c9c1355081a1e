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

# --- one pipeline, wired once (issue 20) ---

PART_CLASSES = ('FeatureExtractor', 'DiscriminativeNetwork', 'ContrastiveHead', 'MemoryBank', 'PerlinGenerator', 'CutPasteGenerator', 'NSAGenerator', 'make_generator')
OWN = {'FeatureExtractor': ('backbone', '03_backbone', 'test_backbone'), 'DiscriminativeNetwork': ('discriminator', '05_discriminator'),
       'ContrastiveHead': ('contrastive', '06_contrastive'), 'MemoryBank': ('memory', '08_memory', 'test_memory_metrics'),
       'PerlinGenerator': ('generators', '02_generators', 'test_generators'), 'CutPasteGenerator': ('generators', '02_generators', 'test_generators'),
       'NSAGenerator': ('generators', '02_generators', 'test_generators'), 'make_generator': ('generators', '02_generators', 'test_generators')}

def code_units():
    "(name, source) of every module, test, benchmark and tool, and of every notebook's code cells."
    for p in [*MODULES.values(), *(ROOT / 'tests').glob('*.py'), *(ROOT / 'benchmarks').glob('*.py'), *(ROOT / 'tools').glob('*.py')]:
        if p.name != 'test_hygiene.py': yield p.stem, p.read_text()
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] == 'code': yield nb.stem, ''.join(c['source'])

UNIT = {u for units in OWN.values() for u in units[1:]}  # a part's own notebook and unit test: it may build what it needs to show that part

def constructions(name:str, src:str)->list:
    "The parts constructed directly in `src`, unless `name` is the parts module, or a part's own module, notebook or unit test."
    if name in ('parts', '06a_parts') or name in UNIT: return []
    try: tree = ast.parse(src)
    except SyntaxError: return []
    called = [n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))]
    return [c for c in called if c in PART_CLASSES and name not in OWN[c]]

def test_the_construction_scan_sees_a_direct_construction():
    assert constructions('model', 'F = FeatureExtractor(cfg.backbone)\nbank = memory.MemoryBank(0.1)') == ['FeatureExtractor', 'MemoryBank']
    assert constructions('backbone', 'F = FeatureExtractor(name)') == [] and constructions('model', "F = create_part('F', cfg)") == []
    assert constructions('discriminator', 'F = FeatureExtractor(name)') == ['FeatureExtractor']  # another part's module is not exempt

def test_every_part_is_built_by_the_parts_module():
    bad = [f'{name}: {c}(' for name, src in code_units() for c in constructions(name, src)]
    assert not bad, 'build these with tocoad.parts.create_part (or stage_parts):\n' + '\n'.join(sorted(set(bad)))

def statements(src:str)->int: return sum(isinstance(n, ast.stmt) for n in ast.walk(ast.parse(src)))

def test_no_exported_cell_has_more_than_25_statements():
    assert statements('a = 1; b = 2\nif a: c = 3') == 4  # semicolons count, and what a statement holds
    big = []
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] == 'code' and s.lstrip().startswith('#| export') and (n := statements(s)) > 25: big.append(f'{nb.name} cell {c["id"]}: {n} statements')
    assert not big, '\n'.join(big)

def signatures()->dict:
    "Name -> positional parameter names of every function and method defined in tocoad (None where two definitions disagree)."
    out = {}
    for p in MODULES.values():
        tree = ast.parse(p.read_text())
        methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body if isinstance(f, ast.FunctionDef)}
        for f in ast.walk(tree):
            if not isinstance(f, ast.FunctionDef): continue
            names = [a.arg for a in f.args.posonlyargs + f.args.args]
            if f.args.vararg: out[f.name] = None; continue  # `*args`: positionals are its design
            patched = any('patch' in ast.unparse(d) for d in f.decorator_list)
            if id(f) in methods or patched: names = names[1:]
            name = 'ToCoAD' if f.name == '__init__' else f.name
            if f.name == '__init__': continue
            out[name] = names if out.get(name, names) == names else None
    return out

def local_defs(src:str)->set:
    "Names of the functions a test, benchmark or notebook example defines for itself (they shadow tocoad's)."
    try: return {n.name if isinstance(n, ast.FunctionDef) else n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) or (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))}
    except SyntaxError: return set()

def long_positional_calls(src:str, sigs:dict)->list:
    "Calls in `src` to tocoad's own functions that pass more than two positional arguments."
    try: tree = ast.parse(src)
    except SyntaxError: return []
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and len(n.args) > 2 and not any(isinstance(a, ast.Starred) for a in n.args):
            fn = n.func.id if isinstance(n.func, ast.Name) else n.func.attr if isinstance(n.func, ast.Attribute) else None
            if sigs.get(fn): out.append(f'{fn}(… {len(n.args)} positionals) line {n.lineno}')
    return out

def test_calls_name_their_arguments_past_the_second():
    sigs = signatures()
    assert long_positional_calls('run_stage(1, step, modules)', sigs) and not long_positional_calls('run_stage(1, step, modules=m)', sigs)
    own = {}  # per test, benchmark, tool or notebook: the functions it defines outside tocoad
    for name, src in code_units():
        if name not in MODULES and not src.lstrip().startswith('#| export'): own.setdefault(name, set()).update(local_defs(src))
    bad = [f'{name}: {c}' for name, src in code_units() for c in long_positional_calls(src, {k: v for k, v in sigs.items() if k not in own.get(name, ())})]
    assert not bad, 'pass arguments past the second by keyword:\n' + '\n'.join(bad)

RANGE_CHECK = re.compile(r'(assert|all\().{0,40}?(?<![\w.])(0|-1) <= [\w\[\]\'"\.]+ <= 1\b')

def test_no_assertion_only_checks_that_a_metric_lies_in_its_range():
    "`assert 0 <= auroc <= 1` cannot fail: an AUROC always does. Assert what a wrong computation would break instead."
    assert RANGE_CHECK.search("assert all(0 <= r['image_auroc'] <= 1 for r in rows)") and RANGE_CHECK.search('assert -1 <= l_sym <= 1')
    found = [name for name, src in code_units() for line in src.splitlines() if RANGE_CHECK.search(line)]
    assert not found, found

PATCH_RUN = 3  # a class may be followed by up to this many of its own @patch methods before its example: a panel's constructor calls them

def public_definitions(src:str)->list:
    "(name, class it is patched onto or None) for the public functions and classes an exported cell defines; [] for any other cell."
    if not src.lstrip().startswith('#| export'): return []
    try: tree = ast.parse(src)
    except SyntaxError: return []
    def onto(n):
        if isinstance(n, ast.FunctionDef) and any('patch' in ast.unparse(d) for d in n.decorator_list) and n.args.args and n.args.args[0].annotation is not None:
            return ast.unparse(n.args.args[0].annotation)
    return [(n.name, onto(n)) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith('_')]

def definitions_without_example(cells:list)->list:
    """(earlier, next) for each exported cell of public definitions followed by the next one with no example cell between
    (`cells`: (type, source)); a class may first take up to PATCH_RUN cells of its own @patch methods."""
    bad, pending, run = [], None, None  # run: [class, methods patched onto it so far]
    for kind, src in cells:
        if kind != 'code' or src.lstrip().startswith(('#| hide', '#| default_exp')): continue
        if not src.lstrip().startswith('#| export'): pending = run = None; continue
        if not (defs := public_definitions(src)): continue  # one cell is one unit: its definitions share the example after it
        (first, cls), (last, last_cls) = defs[0], defs[-1]
        if run and cls == run[0] and run[1] < PATCH_RUN: run[1] += 1
        elif pending: bad.append((pending, first)); run = None
        if last_cls is None and 'class ' + last in src: run = [last, 0]
        pending = last
    return bad

def test_definitions_without_example_sees_two_definitions_in_a_row():
    e = lambda name: ('code', f'#| export\ndef {name}(): pass')
    m = lambda name, cls: ('code', f'#| export\n@patch\ndef {name}(self:{cls}): pass')
    assert definitions_without_example([e('a'), ('markdown', 'text'), e('b'), ('code', 'b()'), e('_c'), e('d')]) == [('a', 'b')]
    assert definitions_without_example([('code', '#| export\nclass P: pass'), m('update', 'P'), m('figure', 'P'), ('code', 'P()')]) == []  # a panel and its methods
    assert definitions_without_example([('code', '#| export\nclass P: pass'), *[m(f'f{k}', 'P') for k in range(4)]]) == [('f2', 'f3')]  # but not a wall of them
    assert definitions_without_example([('code', '#| export\nclass P: pass'), m('update', 'Q')]) == [('P', 'update')]  # nor another class's

def test_every_public_definition_is_followed_by_an_example():
    "STYLE.md: after every exported definition, a small example or check before the next one."
    bad = [f'{nb.name}: {a} → {b}' for nb in sorted((ROOT / 'nbs').glob('*.ipynb'))
           for a, b in definitions_without_example([(c['cell_type'], ''.join(c['source'])) for c in json.loads(nb.read_text())['cells']])]
    assert not bad, 'add an example or check after the first of each pair:\n' + '\n'.join(bad)
