"""Reporting: one `ok    name` / `FAIL  name: detail` line per check, then the total."""

from __future__ import annotations

class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok

    def run(self, name: str, fn) -> None:
        """Runs fn() -> list of problems (empty: passed); an exception is a failure."""
        try:
            problems = fn()
        except Exception as e:  # noqa: BLE001 - any crash of a check is a failed check
            problems = [f"{type(e).__name__}: {e}"]
        self.check(name, not problems, "; ".join(problems[:12]) + (" ..." if len(problems) > 12 else ""))

    def finish(self) -> int:
        print(f"deploy: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
