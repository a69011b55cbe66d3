"""``warroom postmortem``: an incident's post-mortem draft as Markdown or HTML."""

from __future__ import annotations

from pathlib import Path

import click

from bot.drafts import postmortem_markdown
from handlers.cli.base import Context, cli, pass_ctx


@cli.command()
@click.argument("key")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
@pass_ctx
def postmortem(obj: Context, key: str, fmt: str, output: str | None) -> None:
    """Draft the post-mortem of incident KEY (Markdown, or HTML for a browser)."""
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


# -- incidents -----------------------------------------------------------------
