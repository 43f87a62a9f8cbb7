"""The one script loader (noetl/tools/_script.py) that python, postgres and duckdb share: inline,
file and http sources against a real local HTTP server, through the python tool itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from support.httpserver import LocalHTTPServer
from support.tools import make_call, run_async

from noetl.errors import ToolError
from noetl.tools._script import load_script
from noetl.tools.python import run_python


def load(script: Any, playbook_dir: Path | None = None) -> str:
    async def main() -> str:
        call = make_call(None)
        call.playbook_dir = playbook_dir
        return await load_script(script, call)

    return run_async(main)


def python(config: dict[str, Any], args: dict[str, Any] | None = None, playbook_dir: Path | None = None) -> Any:
    async def main() -> Any:
        call = make_call(None)
        call.args = dict(args or {})
        call.playbook_dir = playbook_dir
        return await run_python(config, call)

    return run_async(main)


def test_inline_source_is_the_text_of_source_code() -> None:
    assert load({"uri": "inline", "source": {"type": "inline", "code": "result = 1"}}) == "result = 1"
    assert python({"script": {"source": {"type": "inline", "code": "result = n * 2"}}}, {"n": 21}) == 42


def test_inline_source_without_code_is_a_config_error() -> None:
    with pytest.raises(ToolError) as caught:
        load({"uri": "inline", "source": {"type": "inline"}})
    assert caught.value.kind == "config" and "source.code" in caught.value.message


def test_python_file_script_is_found_beside_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text("result = {'twice': n * 2}\n")
    assert python({"script": {"uri": "./step.py", "source": {"type": "file"}}}, {"n": 4}, tmp_path) == {"twice": 8}


def test_python_http_script_is_fetched(http_server: LocalHTTPServer) -> None:
    assert load({"uri": f"{http_server.url}/text", "source": {"type": "http"}}) == "hello, world"
    # The fetched text is the python code that runs: `hello, world` reads two undefined names.
    with pytest.raises(ToolError) as caught:
        python({"script": {"uri": "/text", "source": {"type": "http", "endpoint": http_server.url}}})
    assert (caught.value.kind, caught.value.message) == ("NameError", "NameError: name 'hello' is not defined")


def test_unknown_source_type_lists_the_known_ones() -> None:
    with pytest.raises(ToolError) as caught:
        load({"uri": "x", "source": {"type": "ftp"}})
    assert "inline, file, http, gcs, s3" in caught.value.message


@pytest.mark.skipif(importlib.util.find_spec("boto3") is not None, reason="boto3 is installed")
def test_a_missing_client_library_names_an_extra_that_exists() -> None:
    with pytest.raises(ToolError) as caught:
        python({"script": {"uri": "s3://bucket/step.py", "source": {"type": "s3"}}})
    assert "pip install 'noetl[aws]'" in caught.value.message
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert "\naws = [" in pyproject
