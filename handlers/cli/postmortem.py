"""``warroom postmortem``: an incident's post-mortem draft as Markdown or HTML."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bot.drafts import postmortem_markdown
from handlers.cli.base import EXIT_REFUSED, Context, cli, pass_ctx


@cli.command()
@click.argument("key")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
@click.option(
    "--export",
    "target",
    metavar="TARGET",
    help="Export the draft to TARGET of export.targets (Confluence, GitHub) instead.",
)
@pass_ctx
def postmortem(obj: Context, key: str, fmt: str, output: str | None, target: str | None) -> None:
    """Draft the post-mortem of incident KEY (Markdown, or HTML for a browser)."""
    if target is not None:
        _export(obj, key, target)
        return
    text = obj.run(lambda core: postmortem_markdown(core, key))
    if fmt == "html":
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
        text = f"<!doctype html><meta charset='utf-8'><title>{key} post-mortem</title>\n{body}"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def _export(obj: Context, key: str, target: str) -> None:
    """Queue the export, let this command's delivery run it, then say what became of it."""
    queued = obj.run(lambda core: core.exports.request(key, target, actor=obj.actor))
    outcomes = obj.run(lambda core: core.exports.outcomes(key, [target]))
    text = outcomes.get(target)
    if text is None:
        how = "queued" if queued else "already queued"
        click.echo(f"{key}: export to {target} {how}; the server's worker will retry it.")
    elif text.startswith("⚠️"):
        click.echo(f"error: {text}", err=True)
        sys.exit(EXIT_REFUSED)
    else:
        click.echo(text)


# -- incidents -----------------------------------------------------------------
