"""Template sets: rendered from texts in memory, and a broken template is named with its line."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from daemon.rendering import (
    MAIN_TEMPLATE,
    Paths,
    RenderFacts,
    TemplateSet,
    environment_for,
    place_in_templates,
    render_config,
    template_error_place,
)
from daemon.routing import Backend, Route, RoutingTable
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.watched import read_shipped_templates

SHIPPED = (
    ("main.j2", "{% include 'part.j2' %}x={{ x }}\n", "/shipped/main.j2"),
    ("part.j2", "shipped part\n", "/shipped/part.j2"),
)


def own_set(**texts: str) -> TemplateSet:
    """The shipped test set with your templates ``<name>.j2`` = text, from /mine."""
    own = tuple((f"{name}.j2", text, f"/mine/{name}.j2") for name, text in sorted(texts.items()))
    return TemplateSet(SHIPPED, own)


def raised(templates: TemplateSet, name: str, **values: object) -> BaseException:
    """What loading and rendering ``name`` from ``templates`` raises."""
    with pytest.raises(Exception) as caught:
        environment_for(templates).get_template(name).render(**values)
    return caught.value


def test_equal_effective_texts_have_equal_fingerprints() -> None:
    """The fingerprint covers the effective texts only: not origins, not shadowed texts."""
    shipped = TemplateSet(SHIPPED)
    assert own_set(part="shipped part\n").fingerprint == shipped.fingerprint
    assert own_set(part="own part\n").fingerprint != shipped.fingerprint
    assert own_set(part="own part\n").fingerprint == own_set(part="own part\n").fingerprint
    assert own_set(extra="").fingerprint != shipped.fingerprint


def test_changed_from_names_added_edited_and_removed_templates() -> None:
    """changed_from lists the names whose effective text differs, in order."""
    shipped = TemplateSet(SHIPPED)
    mine = own_set(part="own part\n", extra="new\n", main=SHIPPED[0][1])
    assert mine.changed_from(shipped) == ("extra.j2", "part.j2")
    assert shipped.changed_from(mine) == ("extra.j2", "part.j2")
    assert mine.changed_from(mine) == ()


def test_shipped_only_drops_your_templates() -> None:
    """shipped_only is the same set without your templates."""
    mine = own_set(part="own part\n")
    assert mine.shipped_only() == TemplateSet(SHIPPED)
    assert mine.shipped_only().effective["part.j2"] == ("shipped part\n", "/shipped/part.j2")


def test_environment_renders_from_the_texts_yours_first() -> None:
    """The environment reads the set's texts; your template replaces the shipped one."""
    assert environment_for(TemplateSet(SHIPPED)).get_template("main.j2").render(x=1) == (
        "shipped part\nx=1\n"
    )
    mine = own_set(part="own part\n")
    assert environment_for(mine).get_template("main.j2").render(x=2) == "own part\nx=2\n"
    assert environment_for(own_set(part="own part\n")) is environment_for(mine)


def test_a_syntax_error_is_placed_at_its_file_and_line() -> None:
    """A Jinja syntax error names the template's origin path and the line."""
    error = raised(own_set(part="fine\nfine\n{% if %}\n{% endif %}\n"), "main.j2", x=1)
    assert isinstance(error, jinja2.TemplateSyntaxError)
    assert template_error_place(error) == ("/mine/part.j2", 3)


def test_an_undefined_variable_is_placed_at_its_file_and_line() -> None:
    """A runtime error (undefined variable) names the included template and its line."""
    error = raised(own_set(part="one\ntwo {{ missing }}\n"), "main.j2", x=1)
    assert isinstance(error, jinja2.UndefinedError)
    assert template_error_place(error) == ("/mine/part.j2", 2)


def test_a_value_the_config_guard_refuses_is_placed_at_its_line() -> None:
    """A printed value with nginx syntax in it is refused, at the line that printed it."""
    error = raised(TemplateSet(SHIPPED), "main.j2", x="1; evil")
    assert isinstance(error, ValueError)
    assert template_error_place(error) == ("/shipped/main.j2", 1)


def test_an_error_outside_templates_has_no_place() -> None:
    """An exception raised outside any template names no template."""
    with pytest.raises(ValueError) as caught:
        int("x")
    assert template_error_place(caught.value) is None


CONFIG = "one;\nworker_processes auto;\n    proxy_bufering off;\n}\n"
TEMPLATES = own_set(
    main="one;\nworker_processes {{ w }};\n{% if b %}\n    proxy_bufering {{ b }};\n{% endif %}\n",
    part="    proxy_buffering {{ b }};\n",
)


def test_an_nginx_message_is_placed_at_the_template_line_that_printed_it() -> None:
    """ "... in nginx.conf:N" maps to the changed template line whose literal text is line N."""
    message = 'nginx: [emerg] unknown directive "proxy_bufering" in nginx.conf:3'
    names = ("main.j2", "part.j2")
    assert place_in_templates(message, CONFIG, TEMPLATES, names) == ("/mine/main.j2", 4)
    message = "nginx: [emerg] invalid number of arguments in nginx.conf:2"
    assert place_in_templates(message, CONFIG, TEMPLATES, names) == ("/mine/main.j2", 2)


def test_the_template_line_with_the_most_literal_text_wins() -> None:
    """Of several template lines matching the config line, the longest literal match wins."""
    message = 'nginx: [emerg] unknown directive "proxy_bufering" in nginx.conf:3'
    loose = own_set(main=TEMPLATES.effective["main.j2"][0], part="{{ name }} off;\n")
    assert place_in_templates(message, CONFIG, loose, ["part.j2"]) == ("/mine/part.j2", 1)
    assert place_in_templates(message, CONFIG, loose, ["part.j2", "main.j2"]) == (
        "/mine/main.j2",
        4,
    )


def test_only_the_named_templates_are_searched() -> None:
    """A line printed by a template not in ``names`` is not placed."""
    message = 'nginx: [emerg] unknown directive "proxy_bufering" in nginx.conf:3'
    assert place_in_templates(message, CONFIG, TEMPLATES, ["part.j2", "gone.j2"]) is None


def test_an_nginx_message_without_a_usable_line_number_has_no_place() -> None:
    """No ``nginx.conf:N`` (or N outside the config): None."""
    names = ("main.j2",)
    assert place_in_templates("nginx: [emerg] bind() failed", CONFIG, TEMPLATES, names) is None
    assert place_in_templates("x in nginx.conf:0", CONFIG, TEMPLATES, names) is None
    assert place_in_templates("x in nginx.conf:99", CONFIG, TEMPLATES, names) is None


def test_a_bad_line_in_your_copy_of_the_shipped_main_template_is_placed() -> None:
    """A directive added to your copy of nginx.conf.j2 is found in the rendered config."""
    shipped = read_shipped_templates(builtin_templates())
    text = {name: text for name, text, _ in shipped}[MAIN_TEMPLATE]
    edited = text.replace(
        "    server_tokens off;\n",
        "    server_tokens off;\n    proxy_bufering {{ settings.worker_processes }};\n",
    )
    assert edited != text
    line = edited.splitlines().index("    proxy_bufering {{ settings.worker_processes }};") + 1
    origin = "/mine/" + MAIN_TEMPLATE
    templates = TemplateSet(shipped, ((MAIN_TEMPLATE, edited, origin),))
    settings = Settings(state_dir=Path("/var/lib/dockyard"))
    routes = RoutingTable((Route("a.test", "/", (Backend("172.17.0.2", 80),), ("web",)),))
    config = render_config(
        routes, settings, RenderFacts(Paths.under(settings.state_dir)), environment_for(templates)
    )
    at = config.splitlines().index("    proxy_bufering auto;") + 1
    message = f'nginx: [emerg] unknown directive "proxy_bufering" in nginx.conf:{at}'
    assert place_in_templates(message, config, templates, [MAIN_TEMPLATE]) == (origin, line)
