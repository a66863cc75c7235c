"""In-process policy decisions: the same Rego v1 files and data document, evaluated by regorus.

regorus (Microsoft's Rust Rego engine; PyPI distribution ``gordon-to-regorus``, module ``regorus``) offers
two evaluators over the same parsed policy:

* ``interpreter`` (default): ``regorus.Engine``, the tree-walking interpreter. About 0.3-0.4 ms per
  decision of this policy on the 2-core reference machine. An evaluation conflict is an error.
* ``rvm``: the policy compiled once to regorus' bytecode VM (``regorus.Program`` / ``regorus.Rvm``) for the
  three decision entry points; about 5x faster. A conflict evaluates to undefined (still fail closed), and
  a missing decision rule fails at load time rather than per decision.

Either way a decision takes well under a millisecond, so it runs inline on the event loop. One evaluator is
loaded at start; decisions on it are serialised by a lock (set input + evaluate must not interleave
across threads).

Any error (a policy that does not load, an evaluation error, an undefined or malformed result) raises
:class:`PolicyUnavailable`: fail closed, like the OPA engine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import regorus

from media_gateway.policy.engine import (
    DECISION_POINTS,
    DEFAULT_POLICY_DIR,
    POLICY_PACKAGE,
    Decision,
    DecisionPoint,
    PolicyUnavailable,
    new_decision_id,
    parse_decision,
)

__all__ = ["Evaluator", "InProcessPolicyEngine", "PolicyLoadError", "policy_files"]

DATA_FILE = "data.json"
Evaluator = Literal["interpreter", "rvm"]
# How regorus' RVM reports an undefined entry point (a JSON string, not null).
_RVM_UNDEFINED = "<undefined>"


class PolicyLoadError(RuntimeError):
    """The policy directory could not be loaded (raised at construction, not per decision)."""


def policy_files(policy_dir: Path) -> list[Path]:
    """The ``*.rego`` files of ``policy_dir`` that make up the policy (``*_test.rego`` excluded)."""
    return sorted(p for p in policy_dir.glob("*.rego") if not p.name.endswith("_test.rego"))


def _error_summary(exc: BaseException) -> str:
    """regorus errors look like ``--> file:row:col`` / source excerpt / ``error: text`` / Rust backtrace."""
    text = str(exc).split("Stack backtrace:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    location = next((line[4:] for line in lines if line.startswith("--> ")), None)
    message = next((line for line in lines if line.startswith("error:")), None)
    if message is None:
        message = lines[0] if lines else type(exc).__name__
    summary = f"{location}: {message}" if location else message
    return summary[:300]


class InProcessPolicyEngine:
    """A :class:`~media_gateway.policy.engine.PolicyEngine` evaluating the policies with regorus."""

    def __init__(
        self,
        policy_dir: Path = DEFAULT_POLICY_DIR,
        *,
        package: str = POLICY_PACKAGE,
        evaluator: Evaluator = "interpreter",
    ) -> None:
        if evaluator not in ("interpreter", "rvm"):
            raise ValueError(f"unknown evaluator {evaluator!r}")
        self._package = package
        self._evaluator = evaluator
        self._lock = threading.Lock()
        modules, data_json = self._read(policy_dir)
        try:
            if evaluator == "rvm":
                entry_points = [self._rule(point) for point in DECISION_POINTS]
                program = regorus.Program.compile_from_modules(data_json, modules, entry_points)
                self._vm: Any = regorus.Rvm()
                self._vm.load_program(program)
                self._vm.set_data_json(data_json)
            else:
                self._engine: Any = regorus.Engine()
                for name, text in modules:
                    self._engine.add_policy(name, text)
                self._engine.add_data_json(data_json)
        except Exception as exc:
            raise PolicyLoadError(f"cannot load the policies in {policy_dir}: {_error_summary(exc)}") from exc
        self._closed = False

    @property
    def evaluator(self) -> Evaluator:
        return self._evaluator

    def _rule(self, point: DecisionPoint) -> str:
        return f"data.{self._package}.{point}"

    @staticmethod
    def _read(policy_dir: Path) -> tuple[list[tuple[str, str]], str]:
        files = policy_files(policy_dir)
        if not files:
            raise PolicyLoadError(f"no .rego files in {policy_dir}")
        modules = [(str(path), path.read_text(encoding="utf-8")) for path in files]
        data: Any = {}
        data_path = policy_dir / DATA_FILE
        if data_path.is_file():
            try:
                data = json.loads(data_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise PolicyLoadError(f"{data_path} is not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise PolicyLoadError(f"{data_path} must hold a JSON object")
        return modules, json.dumps(data)

    def _evaluate(self, point: DecisionPoint, input_json: str) -> Any:
        rule = self._rule(point)
        with self._lock:
            if self._evaluator == "rvm":
                self._vm.set_input_json(input_json)
                result = json.loads(self._vm.execute_entry_point(rule))
                return None if result == _RVM_UNDEFINED else result
            self._engine.set_input_json(input_json)
            return self._engine.eval_rule(rule)

    async def decide(self, point: DecisionPoint, input: Mapping[str, Any]) -> Decision:
        decision_id = new_decision_id()
        if self._closed:
            raise PolicyUnavailable("the in-process policy engine is closed", decision_id=decision_id)
        # Through JSON so both engines see exactly the same document (and non-JSON values fail closed).
        try:
            input_json = json.dumps(input, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PolicyUnavailable(
                f"{point} input is not JSON-serialisable: {exc}", decision_id=decision_id
            ) from exc
        try:
            result = self._evaluate(point, input_json)
        except Exception as exc:
            raise PolicyUnavailable(
                f"policy evaluation of {point} failed: {_error_summary(exc)}", decision_id=decision_id
            ) from exc
        if result is None:
            raise PolicyUnavailable(f"{self._rule(point)} is undefined", decision_id=decision_id)
        return parse_decision(result, point, decision_id)

    async def ready(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
