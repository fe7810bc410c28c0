"""scripts/make-llamacpp-fixture.py loaded as a module, for the other fixture scripts: its
TOKENIZE_CASES, known_models(), resolve_model(), read_wikitext(), ... (it imports llama_cpp only
inside main(), so loading it needs nothing beyond the standard library)."""

import importlib.util
import os


def load():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-llamacpp-fixture.py")
    spec = importlib.util.spec_from_file_location("make_llamacpp_fixture", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
