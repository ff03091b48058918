"""paperbot's tests: a package, so that `tests.conftest` and `tests.fakes` import by name."""
