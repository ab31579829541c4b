import json

from django.core.management.base import BaseCommand

from tasks_app.handlers.registry import registry


class Command(BaseCommand):
    help = "List the registered handlers with their parameters, defaults and an example kwargs object."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, json=False, **options):
        rows = [_describe(spec) for spec in registry.specs()]
        if json:
            self.stdout.write(_json.dumps(rows, indent=2, default=str))
            return
        for row in rows:
            params = ", ".join(p["text"] for p in row["parameters"]) or "no parameters"
            self.stdout.write(f"{row['name']}({params})")
            details = [f"timeout={row['timeout']}s" if row["timeout"] else "no timeout", f"retries={row['retries']}"]
            if row["aliases"]:
                details.append(f"aliases={', '.join(row['aliases'])}")
            self.stdout.write(f"    {row['description'] or '(no description)'}  [{'; '.join(details)}]")
            self.stdout.write(f"    example kwargs: {_json.dumps(row['example_kwargs'])}")


_json = json


def _describe(spec) -> dict:
    parameters = []
    for p in spec.parameters():
        text = f"{p.name}: {p.annotation_text}" + ("" if p.required else f" = {p.default!r}")
        parameters.append(
            {
                "name": p.name,
                "type": p.annotation_text,
                "required": p.required,
                "default": None if p.required else p.default,
                "text": text,
            }
        )
    return {
        "name": spec.name,
        "description": spec.description,
        "parameters": parameters,
        "timeout": spec.timeout,
        "retries": spec.retries,
        "retry_backoff": spec.retry_backoff,
        "aliases": list(spec.aliases),
        "module": spec.module,
        "example_kwargs": spec.example_kwargs(),
    }
