"""The benchmarks' template databases: one per set of migrations, so branches sharing a server never share one."""

import shutil
from pathlib import Path

from bench import aps_common, common


def _tree(tmp_path: Path, name: str) -> Path:
    tree = tmp_path / name
    shutil.copytree(common.ROOT / "tasks_app" / "migrations", tree / "tasks_app" / "migrations")
    return tree


def test_a_tree_with_the_same_migrations_uses_the_same_template(tmp_path):
    assert common.migrations_digest(_tree(tmp_path, "copy")) == common.migrations_digest()
    assert common.TEMPLATE_DB.endswith(common.migrations_digest())
    assert aps_common.TEMPLATE_DB.endswith(common.migrations_digest())


def test_a_migration_more_or_a_changed_one_uses_another_template(tmp_path):
    added, changed = _tree(tmp_path, "added"), _tree(tmp_path, "changed")
    (added / "tasks_app" / "migrations" / "0099_other_branch.py").write_text("# another branch's migration\n")
    first = sorted((changed / "tasks_app" / "migrations").glob("0001_*.py"))[0]
    first.write_text(first.read_text() + "\n# edited\n")
    digests = {common.migrations_digest(tree) for tree in (common.ROOT, added, changed)}
    assert len(digests) == 3
