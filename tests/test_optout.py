"""Opt-out signals: robots.txt for AI crawlers, W3C TDMRep, noai, on the real fixtures.

`licenses/robots_ai_optout/` holds ai.robots.txt's list of AI crawlers, crawler-commons' 24
robots.txt parser fixtures and the W3C TDMRep specification with its examples. No real page in
the fixtures carries an opt-out tag, so the meta/header cases splice one into a real page.
"""

from __future__ import annotations

import gzip
import json

import lxml.html
import pytest
from conftest import require_fixture
from warcio.archiveiterator import ArchiveIterator

from opencorpus_dagster.licensing.ai_crawlers import AI_USER_AGENTS
from opencorpus_dagster.licensing.optout import (
    OptOut,
    RobotsPolicy,
    TdmRepPolicy,
    TdmRepRule,
    detect_optout,
)
from opencorpus_dagster.licensing.web import detect_page_licenses

OPTOUT = "licenses/robots_ai_optout"
ROBOTS_TESTS = f"{OPTOUT}/crawler-commons-robots-tests"


def robots(name: str) -> RobotsPolicy:
    return RobotsPolicy.parse(require_fixture(f"{ROBOTS_TESTS}/{name}").read_bytes())


# --- the AI crawler list ---------------------------------------------------------------------


def test_ai_user_agents_equal_the_fixture_list():
    robots_txt = require_fixture(f"{OPTOUT}/ai.robots.txt-project/robots.txt").read_text()
    listed = [line.split(":", 1)[1].strip() for line in robots_txt.splitlines() if line.lower().startswith("user-agent:")]
    metadata = json.loads(require_fixture(f"{OPTOUT}/ai.robots.txt-project/robots.json").read_text())
    assert list(AI_USER_AGENTS) == listed == list(metadata)
    assert len(AI_USER_AGENTS) == 166
    assert {"GPTBot", "CCBot", "ClaudeBot", "Google-Extended", "Brightbot 1.0"} <= set(AI_USER_AGENTS)


# --- robots.txt parsing: crawler-commons' fixtures ----------------------------------------------

# (file, user agent, path, allowed). Rows marked cc come from crawler-commons'
# SimpleRobotRulesParserTest for the same file; rfc rows from RFC 9309's worked examples
# (sections 2.2.1, 5.1, 5.2) or, for files crawler-commons only checks for sitemaps, delays or
# warnings, from the RFC's rules applied to the file.
ROBOTS_CASES = [
    ("astore.amazon.com-robots.txt", "anybot", "/", True),  # rfc: only non-rule records
    ("crawl-delay-group-merging.txt", "mybot", "/private/x", False),  # rfc 2.2.4: Crawl-delay does not end a group
    ("crawl-delay-group-merging.txt", "yourbot", "/login/", False),  # rfc 2.2.1: yourbot's two groups merge
    # rfc 2.2.1 merges groups that match the same token; the /login/ group names only yourbot
    # (the file's comment claims mybot too).
    ("crawl-delay-group-merging.txt", "mybot", "/login/", True),
    ("crawl-delay-group-merging.txt", "otherbot", "/private/", True),
    ("directive-typos-robots.txt", "bot1", "/desallow/", False),  # cc
    ("directive-typos-robots.txt", "bot1", "/dissalow/", False),  # cc
    ("directive-typos-robots.txt", "bot2", "/useragent/", False),  # cc
    ("directive-typos-robots.txt", "bot3", "/useg-agent/", False),  # cc
    ("directive-typos-robots.txt", "bot4", "/useragent-no-colon/", False),  # cc
    ("dos-line-endings.txt", "bot1", "/", True),  # cc
    ("extended-standard-robots.txt", "bot1", "/", True),  # rfc: empty Disallow
    ("extended-standard-robots.txt", "bot3", "/any", True),
    ("extension-robots.txt", "mybot", "/private/", False),  # rfc: unknown records ignored
    ("extension-robots.txt", "mybot", "/secret/", True),  # No-index is not a rule
    ("extension-robots.txt", "otherbot", "/admin/", False),
    ("extension-robots.txt", "anybot", "/admin/", True),
    ("extensions-group-merging.txt", "mybot", "/private/", False),  # per the file's comments
    ("extensions-group-merging.txt", "mybot", "/login/", False),
    ("extensions-group-merging.txt", "mybot", "/public", True),
    ("extensions-group-merging.txt", "otherbot", "/public", False),
    ("extensions-group-merging.txt", "otherbot", "/llms.txt", True),  # longest match wins
    ("format-errors-robots.txt", "bot1", "/whitespace-before-colon/", False),  # cc
    ("format-errors-robots.txt", "bot1", "/no-colon/", False),  # cc
    ("format-errors-robots.txt", "bot2", "/no-colon-useragent/", False),  # cc
    ("format-errors-robots.txt", "bot3", "/whitespace-before-colon/", True),  # cc
    ("malformed-path.txt", "bot1", "/wiki/Wikipedia_talk:Mediation_Committee/", False),  # cc
    ("malformed-path.txt", "bot1", "/wiki/", True),  # cc
    ("many-user-agents.txt", "wget", "/", False),  # cc
    ("many-user-agents.txt", "mysuperlongbotnamethatmatchesnothing", "/", True),  # cc
    ("many-user-agents.txt", "mysuperlongbotnamethatmatchesnothing", "/bot-trap/", False),  # cc
    ("merge-rules.txt", "wget", "/foo/bar/bar.txt", True),  # cc
    ("merge-rules.txt", "wget", "/tmp/bar/bar.txt", False),  # cc
    ("merge-rules.txt", "wget", "/chk/bar/bar.txt", True),  # cc
    ("precedence-of-rules.txt", "wget", "/", True),  # cc
    ("precedence-of-rules.txt", "wget", "/foo/bar", True),  # cc
    ("precedence-of-rules.txt", "wget", "/bar/foo", False),  # cc
    ("precedence-of-rules.txt", "testy", "/", True),  # cc
    ("precedence-of-rules.txt", "testy", "/foo/bar", True),  # cc
    ("precedence-of-rules.txt", "testy", "/foo/blue", False),  # cc
    ("precedence-of-rules.txt", "testy", "/foo/", False),  # cc
    ("precedence-of-rules.txt", "testy", "/foo/tar", False),  # cc
    ("relative-sitemap-robots.txt", "bot1", "/cache/x", False),  # rfc
    ("relative-sitemap-robots.txt", "bot1", "/index.html", True),
    ("rfc9309-example-longest-match-robots.txt", "foobot", "/example/page/disallowed.gif", False),  # rfc 5.2
    ("rfc9309-example-longest-match-robots.txt", "foobot", "/example/page/", True),  # rfc 5.2
    ("rfc9309-example-rule-group-merging.txt", "ExampleBot", "/foo", False),  # rfc 2.2.1
    ("rfc9309-example-rule-group-merging.txt", "ExampleBot", "/baz", False),  # rfc 2.2.1
    ("rfc9309-example-rule-group-merging.txt", "BazBot", "/baz", False),
    ("rfc9309-example-rule-group-merging.txt", "BazBot", "/foo", True),  # own group only, not *
    ("rfc9309-example-rule-group-merging.txt", "otherbot", "/foo", False),
    ("rfc9309-example-rule-group-merging.txt", "otherbot", "/baz", True),
    ("rfc9309-example-simple-robots.txt", "foobot", "/example/page.html", True),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "foobot", "/example/allowed.gif", True),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "foobot", "/other", False),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "barbot", "/example/page.html", False),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "bazbot", "/example/page.html", False),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "barbot", "/publications/", True),
    ("rfc9309-example-simple-robots.txt", "quxbot", "/example/page.html", True),  # rfc 5.1: empty group
    ("rfc9309-example-simple-robots.txt", "otherbot", "/example/x", False),  # rfc 5.1
    ("rfc9309-example-simple-robots.txt", "otherbot", "/img.gif", False),  # rfc 5.1: *.gif$
    ("rfc9309-example-simple-robots.txt", "otherbot", "/publications/", True),  # rfc 5.1
    ("robots-with-utf16be-bom.txt", "foobot", "/profile", False),  # cc
    ("robots-with-utf16le-bom.txt", "foobot", "/profile", False),  # cc
    ("robots-with-utf8-bom.txt", "foobot", "/profile", False),  # cc
    ("robots-with-utf8-bom.txt", "Googlebot", "/news/output/print", False),  # * inside a path
    ("sitemap-robots-dedup.txt", "bot1", "/", True),
    ("sitemap-robots.txt", "bot1", "/", True),  # a bare URL line is ignored
    ("twitter.com-robots.txt", "Googlebot", "/search?q=x", False),  # rfc: query is part of the path
    ("twitter.com-robots.txt", "Googlebot", "/jack", True),
    ("twitter.com-robots.txt", "anybot", "/jack/with_friends", False),
    ("wildcards.txt", "Any-darn-crawler", "/wishlist/bogus", False),  # cc
    ("wildcards.txt", "Any-darn-crawler", "/wishlist/universal/page", True),  # cc
    ("wildcards.txt", "Any-darn-crawler", "/anydirectoryhere/gcrnsts", False),  # cc
    ("www.flot.com-robots.txt", "foobot", "/img/", False),  # cc
    ("www.flot.com-robots.txt", "foobot", "/news/", True),
]


def test_robots_cases_cover_all_24_fixtures():
    files = {p.name for p in require_fixture(ROBOTS_TESTS).iterdir() if p.suffix == ".txt"}
    assert len(files) == 24
    assert {case[0] for case in ROBOTS_CASES} == files


@pytest.mark.parametrize(("name", "user_agent", "path", "allowed"), ROBOTS_CASES)
def test_robots_fixture(name, user_agent, path, allowed):
    assert robots(name).allows(path, user_agent) is allowed
    assert robots(name).allows(f"https://domain.example{path}", user_agent) is allowed


# --- robots.txt: which AI crawler is disallowed ---------------------------------------------------


def test_ai_robots_txt_blocks_ai_crawlers_not_browsers():
    policy = RobotsPolicy.parse(require_fixture(f"{OPTOUT}/ai.robots.txt-project/robots.txt").read_bytes())
    for crawler in ("GPTBot", "CCBot", "ClaudeBot", "Google-Extended", "Brightbot 1.0", "Mozilla/5.0 (compatible; GPTBot/1.2)"):
        assert not policy.allows("/any/page.html", crawler), crawler
    for browser in ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Googlebot", "bingbot"):
        assert policy.allows("/any/page.html", browser), browser
    assert policy.disallows_ai("/any/page.html") == "AddSearchBot"  # every one is named: the first
    assert all(not policy.allows("/", ua) for ua in AI_USER_AGENTS)


@pytest.mark.parametrize(
    ("name", "path", "blocked"),
    [
        ("wildcards.txt", "/wishlist/bogus", "AddSearchBot"),  # the catch-all group: any AI crawler
        ("wildcards.txt", "/wishlist/universal/page", None),
        ("rfc9309-example-simple-robots.txt", "/example/x", "AddSearchBot"),
        ("rfc9309-example-simple-robots.txt", "/publications/x", None),
        ("twitter.com-robots.txt", "/search?q=opt-out", "AddSearchBot"),
        ("twitter.com-robots.txt", "/jack", None),
        ("sitemap-robots.txt", "/", None),
    ],
)
def test_disallows_ai_on_fixtures(name, path, blocked):
    assert robots(name).disallows_ai(path) == blocked


@pytest.mark.parametrize("name", sorted({case[0] for case in ROBOTS_CASES}))
def test_disallows_ai_equals_asking_every_ai_crawler(name):
    """disallows_ai asks one crawler for the whole catch-all group; the answer is the same as
    asking all 166, named crawlers first."""
    policy = robots(name)
    order = [ua for ua in AI_USER_AGENTS if policy.has_group_for(ua)]
    order += [ua for ua in AI_USER_AGENTS if not policy.has_group_for(ua)]
    for path in {case[2] for case in ROBOTS_CASES} | {"/", "/robots.txt.html"}:
        asked_all = next((ua for ua in order if not policy.allows(path, ua)), None)
        assert policy.disallows_ai(path) == asked_all, path


@pytest.mark.parametrize(
    ("robots_txt", "path", "blocked"),
    [
        ("User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n", "/post", "GPTBot"),
        # named groups are reported before the catch-all one
        ("User-agent: *\nDisallow: /private/\n\nUser-agent: GPTBot\nDisallow: /\n", "/private/x", "GPTBot"),
        ("User-agent: *\nDisallow: /private/\n\nUser-agent: GPTBot\nDisallow: /\n", "/public", "GPTBot"),
        # a crawler allowed by its own group escapes the catch-all disallow; the others do not
        ("User-agent: *\nDisallow: /\n\nUser-agent: AddSearchBot\nAllow: /\n", "/post", "AgentTimes"),
        # RFC 9309 2.2.4: Crawl-delay between user-agent lines does not split the group
        ("User-agent: CCBot\nCrawl-delay: 10\nUser-agent: GPTBot\nDisallow: /\n", "/post", "CCBot"),
        ("User-agent: Googlebot\nDisallow: /\n", "/post", None),
        # protego lets a group's value match at a token boundary inside a longer token, so a
        # "google" group binds Google-Agent (stricter than RFC 9309 token equality: conservative)
        ("User-agent: google\nDisallow: /\n", "/post", "Google-Agent"),
        ("", "/post", None),
        (b"\xff\xfeU\x00s\x00e\x00r\x00-\x00a\x00g\x00e\x00n\x00t\x00:\x00 \x00C\x00C\x00B\x00o\x00t\x00\n\x00D\x00i\x00s\x00a\x00l\x00l\x00o\x00w\x00:\x00 \x00/\x00", "/x", "CCBot"),
    ],
)
def test_disallows_ai(robots_txt, path, blocked):
    assert RobotsPolicy.parse(robots_txt).disallows_ai(path) == blocked


# --- TDMRep ------------------------------------------------------------------------------------


def spec_examples() -> list[str]:
    spec = lxml.html.parse(str(require_fixture(f"{OPTOUT}/w3c-tdmrep/spec_index.html"))).getroot()
    return [pre.text_content() for pre in spec.xpath('//pre[@class="example"]')]


def test_tdmrep_spec_examples_parse():
    whole_site, three_groups = (TdmRepPolicy.parse(text) for text in spec_examples()[:2])
    assert whole_site == TdmRepPolicy((TdmRepRule("/", 1),))
    assert three_groups == TdmRepPolicy(
        (
            TdmRepRule("/directory-a/", 1),
            TdmRepRule("/directory-b/html/", 1, "https://provider.com/policies/policy.json"),
            TdmRepRule("/directory-b/images/*.jpg", 0),
        )
    )


@pytest.mark.parametrize(
    ("example", "path", "location", "reservation"),
    [
        (0, "/", "/", 1),
        (0, "/any/page.html?x=1", "/", 1),
        (1, "/directory-a/report.pdf", "/directory-a/", 1),
        (1, "/directory-a", None, None),  # the pattern's end is not reached
        (1, "/Directory-a/report.pdf", None, None),  # case sensitive
        (1, "/directory-%61/report.pdf", "/directory-a/", 1),  # %61 is "a", unreserved: decoded
        (1, "/directory-b/html/index.html", "/directory-b/html/", 1),
        (1, "/directory-b/images/cat.jpg", "/directory-b/images/*.jpg", 0),
        (1, "/directory-b/images/deep/cat.jpg", "/directory-b/images/*.jpg", 0),
        (1, "/directory-b/images/cat.png", None, None),
        (1, "/directory-c/", None, None),
    ],
)
def test_tdmrep_location_matching(example, path, location, reservation):
    rule = TdmRepPolicy.parse(spec_examples()[example]).rule_for(path)
    assert (rule.location if rule else None, rule.reservation if rule else None) == (location, reservation)


def test_tdmrep_first_match_wins_and_dollar_anchors():
    policy = TdmRepPolicy.parse(
        '[{"location": "/blog/open/*.html$", "tdm-reservation": 0},'
        ' {"location": "/blog/", "tdm-reservation": 1}]'
    )
    assert policy.rule_for("/blog/open/a.html").reservation == 0
    assert policy.rule_for("/blog/open/a.html?page=2").reservation == 1  # $ anchors the end
    assert policy.rule_for("/blog/closed/a.html").reservation == 1


@pytest.mark.parametrize(
    ("text", "rules", "problems"),
    [
        ('[{"location": "/", "tdm-reservation": "yes"}]', (TdmRepRule("/", None),), ()),  # protocol error: unset
        ('[{"location": "/", "tdm-reservation": 2}]', (TdmRepRule("/", None),), ()),
        ('[{"location": "/", "tdm-reservation": true}]', (TdmRepRule("/", None),), ()),
        ('[{"location": "/", "tdm-reservation": "1"}]', (TdmRepRule("/", 1),), ()),
        ('[{"tdm-reservation": 1}, {"location": "/a/", "tdm-reservation": 1}]', (TdmRepRule("/a/", 1),), ("rule 0: no location",)),
        ('{"location": "/", "tdm-reservation": 1}', (), ("not a JSON array but dict",)),
        ("<html>Not found</html>", (), ("not JSON: Expecting value: line 1 column 1 (char 0)",)),
    ],
)  # fmt: skip
def test_tdmrep_bad_content_is_data(text, rules, problems):
    assert TdmRepPolicy.parse(text) == TdmRepPolicy(rules, problems)


def spec_headers(example: str) -> dict[str, str]:
    lines = [line.strip() for line in example.strip().splitlines()[1:]]
    return dict(line.split(": ", 1) for line in lines if line)


def test_tdm_header_spec_examples():
    reserved, with_policy = (spec_headers(text) for text in spec_examples()[2:4])
    assert reserved["tdm-reservation"] == "1"
    for headers in (reserved, with_policy):
        assert detect_optout(None, headers, "https://provider.com/a.jpg") == OptOut(
            "tdm-reservation", "HTTP header tdm-reservation: 1"
        )


def test_tdm_meta_spec_example():
    html = spec_examples()[4]
    assert '<meta name="tdm-reservation" content="1">' in html
    optout = detect_optout(html, None, "https://provider.com/doc.html")
    assert optout == OptOut("tdm-reservation", '<meta name="tdm-reservation" content="1">')
    assert optout.reason == "opt-out:tdm-reservation"


# --- real pages with an opt-out tag spliced in ------------------------------------------------

WHIRLWIND_URL = "https://an.wikipedia.org/wiki/Escopete"


@pytest.fixture(scope="module")
def warc_pages(fixtures_dir) -> list[tuple[str, dict[str, str], bytes]]:
    pages = []
    for name in ("commoncrawl-whirlwind/whirlwind.warc.gz", "dolma/sample-0000.warc.gz", "dolma/sample-0001.warc.gz"):
        with open(fixtures_dir / "webarchive" / name, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    headers = dict(record.http_headers.headers)
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    pages.append((uri, headers, record.content_stream().read()))
    return pages


@pytest.fixture(scope="module")
def whirlwind(warc_pages) -> tuple[dict[str, str], bytes]:
    (page,) = [(headers, body) for uri, headers, body in warc_pages if uri == WHIRLWIND_URL]
    return page


def test_no_real_page_opts_out(warc_pages):
    assert len(warc_pages) == 38
    assert [detect_optout(body, headers, uri) for uri, headers, body in warc_pages] == [None] * 38
    # yahoo-1 has "noai" inside base64 noise, but no tag
    yahoo = gzip.decompress(
        require_fixture("html_extraction/mozilla-readability-test-pages/pages/yahoo-1/source.html.gz").read_bytes()
    )
    assert b"noai" in yahoo.lower()
    assert detect_optout(yahoo, None, "https://www.yahoo.com/") is None


def splice(body: bytes, tag: bytes) -> bytes:
    spliced = body.replace(b"</head>", tag + b"</head>", 1)
    assert spliced != body
    return spliced


@pytest.mark.parametrize(
    ("tag", "extra_headers", "expected"),
    [
        (b'<meta name="tdm-reservation" content="1">', {}, OptOut("tdm-reservation", '<meta name="tdm-reservation" content="1">')),
        (b'<META NAME="TDM-Reservation" CONTENT=" 1 ">', {}, OptOut("tdm-reservation", '<meta name="tdm-reservation" content="1">')),
        # tdm-policy alone is no reservation; nor is an invalid value
        (b'<meta name="tdm-policy" content="https://provider.com/policies/policy.json">', {}, None),
        (b'<meta name="tdm-reservation" content="yes">', {}, None),
        (b'<meta name="tdm-reservation" content="0">', {}, None),
        # the meta tag supersedes the header, both ways
        (b'<meta name="tdm-reservation" content="0">', {"TDM-Reservation": "1"}, None),
        (b'<meta name="tdm-reservation" content="1">', {"tdm-reservation": "0"}, OptOut("tdm-reservation", '<meta name="tdm-reservation" content="1">')),
        (b"", {"tdm-reservation": "1"}, OptOut("tdm-reservation", "HTTP header tdm-reservation: 1")),
        (b'<meta name="robots" content="noai, noimageai">', {}, OptOut("noai", '<meta name="robots" content="noai, noimageai">')),
        (b'<meta name="robots" content="noimageai">', {}, None),  # images only, not the text
        (b'<meta name="robots" content="noindex, nofollow">', {}, None),
        (b"", {"X-Robots-Tag": "noai"}, OptOut("noai", "HTTP header X-Robots-Tag: noai")),
        (b"", {"x-robots-tag": "otherbot: noindex, noai"}, OptOut("noai", "HTTP header X-Robots-Tag: otherbot: noindex, noai")),
    ],
)  # fmt: skip
def test_spliced_opt_out_tags(whirlwind, tag, extra_headers, expected):
    headers, body = whirlwind
    html = splice(body, tag) if tag else body
    assert detect_optout(html, {**headers, **extra_headers}, WHIRLWIND_URL) == expected
    # the same as text
    assert detect_optout(html.decode("utf-8"), {**headers, **extra_headers}, WHIRLWIND_URL) == expected


def test_opt_out_applies_to_openly_licensed_page(whirlwind):
    headers, body = whirlwind
    html = splice(body, b'<meta name="tdm-reservation" content="1">')
    assert detect_page_licenses(html, WHIRLWIND_URL).license == "CC-BY-SA-4.0"
    assert detect_optout(html, headers, WHIRLWIND_URL).reason == "opt-out:tdm-reservation"


@pytest.mark.parametrize(
    ("tdmrep_json", "extra_headers", "tag", "expected"),
    [
        ('[{"location": "/wiki/", "tdm-reservation": 1}]', {}, b"",
         OptOut("tdmrep-json", 'tdmrep.json location "/wiki/" tdm-reservation 1')),
        ('[{"location": "/w/", "tdm-reservation": 1}]', {}, b"", None),  # another path
        # the header supersedes the file, the meta tag supersedes both
        ('[{"location": "/", "tdm-reservation": 1}]', {"tdm-reservation": "0"}, b"", None),
        ('[{"location": "/", "tdm-reservation": 0}]', {"tdm-reservation": "1"}, b"",
         OptOut("tdm-reservation", "HTTP header tdm-reservation: 1")),
        ('[{"location": "/", "tdm-reservation": 1}]', {"tdm-reservation": "0"}, b'<meta name="tdm-reservation" content="1">',
         OptOut("tdm-reservation", '<meta name="tdm-reservation" content="1">')),
        # an absent or invalid later value does not reset the file's
        ('[{"location": "/", "tdm-reservation": 1}]', {"tdm-reservation": "maybe"}, b"",
         OptOut("tdmrep-json", 'tdmrep.json location "/" tdm-reservation 1')),
    ],
)  # fmt: skip
def test_tdmrep_processing_priority(whirlwind, tdmrep_json, extra_headers, tag, expected):
    headers, body = whirlwind
    html = splice(body, tag) if tag else body
    policy = TdmRepPolicy.parse(tdmrep_json)
    assert detect_optout(html, {**headers, **extra_headers}, WHIRLWIND_URL, tdmrep=policy) == expected


def test_robots_opt_out_of_real_page(whirlwind):
    headers, body = whirlwind
    ai_robots = RobotsPolicy.parse(require_fixture(f"{OPTOUT}/ai.robots.txt-project/robots.txt").read_bytes())
    assert detect_optout(body, headers, WHIRLWIND_URL, robots=ai_robots) == OptOut(
        "robots-ai", "robots.txt disallows /wiki/Escopete to AddSearchBot"
    )
    catch_all = RobotsPolicy.parse("User-agent: *\nDisallow: /wiki/\n\nUser-agent: Googlebot\nAllow: /\n")
    assert detect_optout(body, headers, WHIRLWIND_URL, robots=catch_all) == OptOut(
        "robots-ai", "robots.txt disallows /wiki/Escopete to AddSearchBot (no group of its own: the catch-all rules)"
    )
    only_private = RobotsPolicy.parse("User-agent: GPTBot\nDisallow: /w/\n")
    assert detect_optout(body, headers, WHIRLWIND_URL, robots=only_private) is None
    # without the page URL there is no path to check
    assert detect_optout(body, headers, None, robots=ai_robots) is None


def test_first_signal_reported_in_order(whirlwind):
    headers, body = whirlwind
    html = splice(body, b'<meta name="robots" content="noai"><meta name="tdm-reservation" content="1">')
    ai_robots = RobotsPolicy.parse(require_fixture(f"{OPTOUT}/ai.robots.txt-project/robots.txt").read_bytes())
    assert detect_optout(html, headers, WHIRLWIND_URL, robots=ai_robots).signal == "tdm-reservation"
    html = splice(body, b'<meta name="robots" content="noai">')
    assert detect_optout(html, headers, WHIRLWIND_URL, robots=ai_robots).signal == "noai"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (None, None),
        ("", None),
        (b"", None),
        (b"\x00\xff garbage noai tdm", None),
        # unclosed elements: the tag itself is complete, so it counts
        ("<html><head><meta name=robots content=noai><title>cut", OptOut("noai", '<meta name="robots" content="noai">')),
        # a tag cut off mid-way is not there
        ("<html><head><meta name=robots content=noai", None),
    ],
)
def test_bad_html_is_data(html, expected):
    assert detect_optout(html, None, "https://example.org/") == expected
