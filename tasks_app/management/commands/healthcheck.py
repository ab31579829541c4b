import json

from django.core.management.base import BaseCommand, CommandError

from tasks_app.monitoring import health


class Command(BaseCommand):
    help = "Check taskhub's dependencies; exit 0 only when the required ones are healthy."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="append",
            dest="names",
            metavar="NAME",
            choices=sorted(health.CHECKS),
            help="only this check (repeatable); it becomes required",
        )
        parser.add_argument("--json", action="store_true", help="print the same JSON as /healthz")

    def handle(self, *args, names=None, json=False, **options):
        result = health.report(names)
        if json:
            self.stdout.write(_json.dumps(result, indent=2))
        else:
            self.stdout.write(_table(result["checks"]))
        if not result["healthy"]:
            failed = [n for n, c in result["checks"].items() if c["required"] and not c["ok"]]
            raise CommandError(f"unhealthy: {', '.join(failed)}", returncode=1)


_json = json


def _table(checks: dict) -> str:
    rows = [("CHECK", "STATUS", "REQUIRED", "MS", "DETAIL")]
    for name, c in checks.items():
        detail = c.get("error") or ", ".join(f"{k}={v}" for k, v in c.items() if k not in {"ok", "required", "ms"})
        rows.append((name, "ok" if c["ok"] else "FAIL", "yes" if c["required"] else "no", str(c.get("ms", "")), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows)
