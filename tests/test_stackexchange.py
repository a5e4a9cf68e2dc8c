"""The Stack Exchange connector on the real coffee (2015) and beer (2017) dumps, and on hostile XML."""

from __future__ import annotations

import gzip
import resource
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.connectors.stackexchange import (
    StackExchangeConnector,
    html_to_text,
)
from opencorpus_dagster.records import Decision, Outcome, RawRecord
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

COFFEE = "coffee.stackexchange.com-2015-03"
BEER = "beer.stackexchange.com-2017-03"
SITE_URLS = {COFFEE: "https://coffee.stackexchange.com", BEER: "https://beer.stackexchange.com"}


def posts_url(dump: str) -> str:
    return f"https://fixtures.opencorpus.invalid/stackexchange/{dump}/Posts.xml"


def connector(*sites: dict, **options) -> StackExchangeConnector:
    cls = connector_class("stackexchange")
    return cls(cls.Options.model_validate({"sites": list(sites), **options}))


def read_all(conn: StackExchangeConnector, fetcher: Fetcher) -> list[RawRecord | Decision]:
    (unit,) = conn.units()
    return list(conn.read(unit, fetcher))


def split(outputs):
    records = [o for o in outputs if isinstance(o, RawRecord)]
    decisions = [o for o in outputs if isinstance(o, Decision)]
    return records, decisions


@pytest.fixture(scope="module")
def dumps(fixture_mirror, tmp_path_factory) -> dict[str, list[RawRecord | Decision]]:
    fetcher = Fetcher(tmp_path_factory.mktemp("cache"), [Mirror(str(fixture_mirror))])
    return {
        dump: read_all(connector({"posts": posts_url(dump), "site_url": SITE_URLS[dump]}), fetcher)
        for dump in (COFFEE, BEER)
    }


def short_id(output: RawRecord | Decision) -> str:
    """The post part of a `<site host>/<post id>` record id."""
    host, _, post = output.source_record_id.partition("/")
    assert host.endswith(".stackexchange.com")
    return post


def records_by_id(outputs) -> dict[str, RawRecord]:
    return {short_id(r): r for r in split(outputs)[0]}


def write_posts(tmp_path: Path, body: str, prolog: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> str:
    path = tmp_path / "Posts.xml"
    path.write_text(prolog + "<posts>\n" + body + "</posts>\n", encoding="utf-8")
    return str(path)


TMP_HOST = "dumps.example.org"


def tmp_url(tmp_path: Path, path: str) -> str:
    """The URL under which `read_tmp` serves a file written in `tmp_path` (a host mirror)."""
    return f"https://{TMP_HOST}/{Path(path).relative_to(tmp_path)}"


def read_tmp(tmp_path: Path, path: str, **options) -> list[RawRecord | Decision]:
    """Read a Posts file written in `tmp_path`, served through a mirror as upstream files are."""
    site = {"posts": tmp_url(tmp_path, path), "site_url": "https://example.stackexchange.com", "key": "example"}
    return read_all(connector(site, **options), Fetcher(tmp_path / "cache", [Mirror(str(tmp_path), host=TMP_HOST)]))


QUESTION_ROW = (
    '<row Id="{id}" PostTypeId="1" CreationDate="2015-01-27T20:09:32.720" Score="3" Title="Question {id}" '
    'Body="&lt;p&gt;{body}&lt;/p&gt;" OwnerUserId="4" Tags="&lt;t&gt;" />\n'
)
ANSWER_ROW = (
    '<row Id="{id}" PostTypeId="2" ParentId="{parent}" CreationDate="2015-01-28T10:00:00.000" Score="{score}" '
    'Body="&lt;p&gt;answer {id}&lt;/p&gt;" OwnerUserId="5" />\n'
)


# -- the real dumps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dump", "rows", "records", "folded_rows", "skipped_post_type"),
    [
        # coffee: 225 questions + 327 answers, 20 tag wiki excerpts (4) + 20 tag wikis (5)
        (COFFEE, 592, 225, 552, 40),
        # beer: 663 questions + 1572 answers, 58 + 58 tag wikis, 3 moderator nominations (6..8: 3)
        (BEER, 2354, 663, 2235, 119),
    ],
)
def test_fixture_counts_conserve_every_row(dumps, dump, rows, records, folded_rows, skipped_post_type):
    kept, decisions = split(dumps[dump])
    assert len(kept) == records
    assert sum(len(r.metadata["post_ids"]) for r in kept) == folded_rows
    assert Counter((d.outcome, d.reason) for d in decisions) == {(Outcome.SKIPPED, "stackexchange.post_type"): skipped_post_type}
    assert folded_rows + len(decisions) == rows
    # every record id is a distinct question id
    assert len({r.source_record_id for r in kept}) == records


def test_beer_post_types_skipped_carry_their_type(dumps):
    _, decisions = split(dumps[BEER])
    assert Counter(d.value for d in decisions) == {"4": 58, "5": 58, "7": 3}


def test_coffee_question_document(dumps):
    record = records_by_id(dumps[COFFEE])["1"]
    assert record.payload.startswith(
        "How should I store whole bean coffee?\n\n"
        "I just got a pound of microroasted, local coffee and am curious what the optimal way to store it is "
        "(what temperature, humidity, etc)\n\n"
        "In a cool, dark, dry, place and whenever possible vacuum sealed.\n"
    )
    assert record.source_record_id == "coffee.stackexchange.com/1"
    assert record.title == "How should I store whole bean coffee?"
    assert record.url == "https://coffee.stackexchange.com/questions/1"
    assert record.upstream_uri == posts_url(COFFEE) + "#question=1&posts=1,24,1617,1618"
    assert record.attribution == (
        "https://coffee.stackexchange.com/q/1 (user 4); https://coffee.stackexchange.com/a/24 (user 24); "
        "https://coffee.stackexchange.com/a/1617 (user 443); https://coffee.stackexchange.com/a/1618 (user 446)"
    )
    assert record.metadata == {
        "site": "coffee.stackexchange.com",
        "dump": COFFEE,
        "post_ids": [1, 24, 1617, 1618],
        "scores": [20, 15, 2, 2],
        "post_licenses": ["CC-BY-SA-3.0"] * 4,
        "authors": ["user 4", "user 24", "user 443", "user 446"],
        "tags": ["storage", "whole-bean"],
        "creation_date": "2015-01-27T20:09:32.720",
        "answer_count": 3,
        "accepted_answer_id": 24,
    }


def test_coffee_licence_decided_by_date_cutover(dumps):
    record = records_by_id(dumps[COFFEE])["1"]
    assert record.license == "CC-BY-SA-3.0"
    assert record.license_evidence == (
        "question 1: date cut-over, CreationDate 2015-01-27 -> CC-BY-SA-3.0; "
        "answer 24: date cut-over, CreationDate 2015-01-27 -> CC-BY-SA-3.0; "
        "answer 1617: date cut-over, LastEditDate 2015-03-05 -> CC-BY-SA-3.0; "
        "answer 1618: date cut-over, CreationDate 2015-03-05 -> CC-BY-SA-3.0 "
        "(cut-over dates: https://meta.stackexchange.com/q/347758)"
    )


def test_beer_accepted_answer_first_then_by_score_then_id(dumps):
    # Question 684 accepted answer 832 (score 1); the others score 710:3, 689:2, 915:2, 700/805/897:1.
    record = records_by_id(dumps[BEER])["684"]
    assert record.metadata["post_ids"] == [684, 832, 710, 689, 915, 700, 805, 897]
    assert record.metadata["scores"][1:] == [1, 3, 2, 2, 1, 1, 1]
    assert record.license == "CC-BY-SA-3.0"
    assert record.license_evidence.startswith("question 684: date cut-over, ")


def test_beer_deleted_author_and_code_block(dumps):
    beer = records_by_id(dumps[BEER])
    assert "https://beer.stackexchange.com/a/432 (user 'user150' (deleted account))" in beer["430"].attribution
    # <pre><code> keeps its lines (trailing spaces trimmed); paragraphs around it are lines.
    assert beer["154"].payload.startswith(
        "Can you order beers by strength of flavour?\n\n"
        "I imagine the might would look something like:\n"
        "Pale Lager\nGeneric lager.\nPilsner\nPale Ale (Which style?)\nImperial Pale Ale\nStout\n"
        "Of course, I'm not a full on beer aficionado, I don't know all the styles.\n\n"
    )
    assert beer["1"].license_evidence == (
        "question 1: date cut-over, LastEditDate 2014-01-21 -> CC-BY-SA-3.0; "
        "answer 4: date cut-over, LastEditDate 2014-01-21 -> CC-BY-SA-3.0 "
        "(cut-over dates: https://meta.stackexchange.com/q/347758)"
    )


def test_unit_keys_from_dump_urls():
    conn = connector(
        {"posts": posts_url(COFFEE), "site_url": "https://coffee.stackexchange.com/"},
        {"posts": "https://archive.org/download/stackexchange/beer.stackexchange.com.xml.gz", "site_url": "https://beer.stackexchange.com"},
        {"posts": "https://mirror.example/x/Posts.xml", "site_url": "https://beer.stackexchange.com", "key": "beer-2024"},
    )
    assert [(u.key, u.urls) for u in conn.units()] == [
        (COFFEE, (posts_url(COFFEE),)),
        ("beer.stackexchange.com", ("https://archive.org/download/stackexchange/beer.stackexchange.com.xml.gz",)),
        ("beer-2024", ("https://mirror.example/x/Posts.xml",)),
    ]
    assert conn.units()[0].extra == {"site_url": "https://coffee.stackexchange.com"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sites": []}, "at least 1 item"),
        (
            {"sites": [{"posts": "https://a.example/Posts.xml", "site_url": "coffee.stackexchange.com"}]},
            r"site_url\n  Value error, 'coffee.stackexchange.com' refused \(url.scheme\): no scheme",
        ),
        ({"sites": [{"posts": "/srv/Posts.xml", "site_url": "https://x.com"}]}, r"posts\n  Value error, '/srv/Posts.xml' refused"),
        ({"sites": [{"posts": "https://a.example/P.xml", "site_url": "https://x.com", "typo": 1}]}, "Extra inputs are not permitted"),
        (
            {"sites": [{"posts": "https://a.example/P.xml", "site_url": "https://x.com"}, {"posts": "https://b.example/P.xml", "site_url": "https://x.com"}]},
            "both get the unit key 'x.com'",
        ),
    ],
)
def test_bad_options_are_errors(options, message):
    with pytest.raises(ValidationError, match=message):
        StackExchangeConnector.Options.model_validate(options)


# -- licences from ContentLicense, mixed documents, options ----------------------------------------


def test_content_license_attribute_and_mixed_licences(tmp_path):
    body = (
        '<row Id="1" PostTypeId="1" CreationDate="2017-01-01T00:00:00" Score="1" Title="Q" Body="&lt;p&gt;q&lt;/p&gt;" '
        'OwnerUserId="1" ContentLicense="CC BY-SA 3.0" AcceptedAnswerId="3" />\n'
        '<row Id="2" PostTypeId="2" ParentId="1" CreationDate="2019-01-01T00:00:00" Score="9" Body="b" '
        'OwnerUserId="2" ContentLicense="CC BY-SA 4.0" />\n'
        # no ContentLicense: edited after the 4.0 cut-over, so the current revision is 4.0
        '<row Id="3" PostTypeId="2" ParentId="1" CreationDate="2010-01-01T00:00:00" LastEditDate="2018-05-02T00:00:00" '
        'Score="0" Body="a" OwnerDisplayName="gone" />\n'
        '<row Id="4" PostTypeId="2" ParentId="1" CreationDate="2011-04-07T23:59:59" Score="0" Body="c" OwnerUserId="3" />\n'
    )
    (record,) = read_tmp(tmp_path, write_posts(tmp_path, body))
    assert record.metadata["post_ids"] == [1, 3, 2, 4]
    assert record.metadata["post_licenses"] == ["CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-SA-4.0", "CC-BY-SA-2.5"]
    assert record.license == "CC-BY-SA-2.5 AND CC-BY-SA-3.0 AND CC-BY-SA-4.0"
    assert record.license_evidence == (
        "question 1: ContentLicense attribute 'CC BY-SA 3.0' -> CC-BY-SA-3.0; "
        "answer 3: date cut-over, LastEditDate 2018-05-02 -> CC-BY-SA-4.0; "
        "answer 2: ContentLicense attribute 'CC BY-SA 4.0' -> CC-BY-SA-4.0; "
        "answer 4: date cut-over, CreationDate 2011-04-07 -> CC-BY-SA-2.5 "
        "(cut-over dates: https://meta.stackexchange.com/q/347758)"
    )
    assert record.payload == "Q\n\nq\n\na\n\nb\n\nc"


def test_min_answer_score_and_unanswered(tmp_path):
    body = (
        QUESTION_ROW.format(id=1, body="first")
        + QUESTION_ROW.format(id=2, body="second")
        + ANSWER_ROW.format(id=3, parent=1, score=5)
        + ANSWER_ROW.format(id=4, parent=1, score=-1)
        + ANSWER_ROW.format(id=5, parent=2, score=0)
        + QUESTION_ROW.format(id=6, body="never answered")
    )
    path = write_posts(tmp_path, body)
    everything = read_tmp(tmp_path, path)
    assert [(short_id(r), r.metadata["post_ids"]) for r in everything] == [("1", [1, 3, 4]), ("2", [2, 5]), ("6", [6])]

    filtered = read_tmp(tmp_path, path, include_unanswered=False, min_answer_score=1)
    assert [
        (short_id(o), o.metadata["post_ids"]) if isinstance(o, RawRecord) else (short_id(o), o.reason, o.value)
        for o in filtered
    ] == [
        ("4", "stackexchange.answer_below_min_score", "-1"),
        ("1", [1, 3]),
        ("5", "stackexchange.answer_below_min_score", "0"),
        ("2", "stackexchange.unanswered", None),
        ("6", "stackexchange.unanswered", None),
    ]


# -- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "record_id", "detail"),
    [
        ('<row PostTypeId="1" CreationDate="2015-01-01T00:00:00" Body="x" />', "row-2", "missing or non-integer Id: None"),
        ('<row Id="x7" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Body="x" />', "x7", "missing or non-integer Id: 'x7'"),
        ('<row Id="7" PostTypeId="question" CreationDate="2015-01-01T00:00:00" Body="x" />', "7", "bad PostTypeId: 'question'"),
        ('<row Id="7" PostTypeId="12" CreationDate="2015-01-01T00:00:00" Body="x" />', "7", "bad PostTypeId: '12'"),
        ('<row Id="7" PostTypeId="1" CreationDate="yesterday" Body="x" />', "7", "unparseable CreationDate: 'yesterday'"),
        ('<row Id="7" PostTypeId="1" Body="x" />', "7", "unparseable CreationDate: missing"),
        ('<row Id="7" PostTypeId="1" CreationDate="2015-01-01" LastEditDate="2015-13-01" Body="x" />', "7", "unparseable LastEditDate: '2015-13-01'"),
        ('<row Id="7" PostTypeId="2" CreationDate="2015-01-01T00:00:00" Body="x" />', "7", "answer with missing or non-integer ParentId: None"),
        ('<row Id="7" PostTypeId="1" Score="high" CreationDate="2015-01-01T00:00:00" Body="x" />', "7", "non-integer Score: 'high'"),
        ('<row Id="1" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Body="x" />', "1", "duplicate Id 1: an earlier row has the same Id"),
    ],
)
def test_malformed_row_quarantined_others_kept(tmp_path, row, record_id, detail):
    body = QUESTION_ROW.format(id=1, body="kept") + row + "\n" + ANSWER_ROW.format(id=9, parent=1, score=1)
    records, decisions = split(read_tmp(tmp_path, write_posts(tmp_path, body)))
    assert [(short_id(r), r.metadata["post_ids"]) for r in records] == [("1", [1, 9])]
    (decision,) = decisions
    assert (short_id(decision), decision.outcome, decision.reason, decision.detail) == (
        record_id, Outcome.QUARANTINED, "stackexchange.malformed_row", detail
    )
    assert decision.stage == "raw"


def test_orphan_answers_skipped(tmp_path):
    body = (
        ANSWER_ROW.format(id=2, parent=1, score=0)  # its question comes later: not an orphan
        + QUESTION_ROW.format(id=1, body="late question")
        + ANSWER_ROW.format(id=3, parent=99, score=0)  # question not in the dump
        + '<row Id="4" PostTypeId="5" CreationDate="2015-01-01T00:00:00" Body="" />\n'
        + ANSWER_ROW.format(id=5, parent=4, score=0)  # parent is a tag wiki, not a question
    )
    outputs = read_tmp(tmp_path, write_posts(tmp_path, body))
    assert [
        (short_id(o), o.metadata["post_ids"]) if isinstance(o, RawRecord) else (short_id(o), o.reason, o.value)
        for o in outputs
    ] == [
        ("4", "stackexchange.post_type", "5"),
        ("1", [1, 2]),
        ("3", "stackexchange.orphan_answer", "99"),
        ("5", "stackexchange.orphan_answer", "4"),
    ]


def test_truncated_gzip_is_unreadable_naming_the_file(tmp_path, fixtures_dir):
    data = (fixtures_dir / "stackexchange" / COFFEE / "Posts.xml.gz").read_bytes()
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableInput) as raised:
        read_tmp(tmp_path, str(path))
    assert raised.value.location.startswith(f"{tmp_url(tmp_path, path)} (read from {path})")
    assert "cannot decompress or read" in raised.value.problem
    assert not list((tmp_path / "cache").glob("stackexchange-*"))  # scratch database removed


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"7z\xbc\xaf\x27\x1c\x00\x04rest", "is a 7z archive"),
        (b'<?xml version="1.0"?>\n<users><row Id="1" /></users>', "root element is <users>, expected <posts>"),
        (b'<?xml version="1.0"?>\n<posts><row Id="1" PostTypeId="1" </posts>', "not well-formed XML"),
        (b"", "not well-formed XML"),
    ],
)
def test_unreadable_files(tmp_path, content, problem):
    path = tmp_path / "Posts.xml"
    path.write_bytes(content)
    with pytest.raises(UnreadableInput, match=problem) as raised:
        read_tmp(tmp_path, str(path))
    assert str(path) in str(raised.value)


# -- DOCTYPE and entity payloads ------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE posts [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE posts [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY % pe SYSTEM "file:///etc/hostname"> ]>
"""


def test_doctype_line_is_accepted(tmp_path):
    prolog = '\ufeff<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE posts SYSTEM "posts.dtd">\n<!-- dump -->\n'
    body = QUESTION_ROW.format(id=1, body="fish &amp;amp; chips") + ANSWER_ROW.format(id=2, parent=1, score=0)
    (record,) = read_tmp(tmp_path, write_posts(tmp_path, body, prolog))
    assert record.payload == "Question 1\n\nfish & chips\n\nanswer 2"


@pytest.mark.parametrize(
    ("prolog", "hostile_row", "entity"),
    [
        (BILLION_LAUGHS, '<row Id="2" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Title="boom" Body="a &lol9; b" />', "lol9"),
        (EXTERNAL_ENTITY, '<row Id="2" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Title="&xxe;" Body="x" />', "xxe"),
    ],
)
def test_entity_payloads_are_never_expanded(tmp_path, prolog, hostile_row, entity):
    body = (
        QUESTION_ROW.format(id=1, body="before")
        + hostile_row
        + "\n"
        # references in element content and to undeclared names stay literal text too
        + f'<row Id="3" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Title="after" Body="&amp;lt;p&amp;gt;ok" >&{entity};</row>\n'
        + '<row Id="4" PostTypeId="2" ParentId="3" CreationDate="2015-01-01T00:00:00" Body="&undeclared; fine" />\n'
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records, decisions = split(read_tmp(tmp_path, write_posts(tmp_path, body, prolog)))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert [(short_id(r), r.payload) for r in records] == [
        ("1", "Question 1\n\nbefore"),
        ("3", "after\n\n<p>ok\n\n&undeclared; fine"),
    ]
    (decision,) = decisions
    assert (short_id(decision), decision.outcome, decision.reason) == ("2", Outcome.QUARANTINED, "stackexchange.malformed_row")
    assert f"references the entity &{entity}; declared in the file's DOCTYPE" in decision.detail
    assert grown_kib < 100_000  # an expanded billion laughs would need gigabytes


def test_external_entity_file_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    prolog = f'<?xml version="1.0"?>\n<!DOCTYPE posts [ <!ENTITY s SYSTEM "file://{secret}"> ]>\n'
    body = '<row Id="1" PostTypeId="1" CreationDate="2015-01-01T00:00:00" Title="t" Body="b">&s;</row>\n'
    outputs = read_tmp(tmp_path, write_posts(tmp_path, body, prolog))
    assert [(short_id(o), o.payload) for o in outputs] == [("1", "t\n\nb")]
    assert all("TOP-SECRET" not in repr(o) for o in outputs)


def test_gzip_input_read_by_magic_bytes(tmp_path):
    path = tmp_path / "Posts.xml"  # gzip bytes behind a plain name
    path.write_bytes(gzip.compress(('<?xml version="1.0"?>\n<posts>' + QUESTION_ROW.format(id=1, body="zipped") + "</posts>").encode()))
    (record,) = read_tmp(tmp_path, str(path))
    assert record.payload == "Question 1\n\nzipped"


# -- HTML bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("<p>One\n  two</p>\n\n<p>Three <em>four</em> <a href='x'>five</a></p>", "One two\nThree four five"),
        ("<ul><li>a</li><li>b <code>c</code></li></ul><ol><li>d</li></ol>", "- a\n- b c\n- d"),
        ("<pre><code>def f():\n    return 1\n</code></pre>", "def f():\n    return 1"),
        ("<p>a<br>b</p><blockquote><p>q</p></blockquote><h2>H</h2>", "a\nb\nq\nH"),
        ("<p>x <img src='i.png' alt='enter image description here'> y</p><!-- c --><hr>", "x y"),
        ("text &amp; <b>bold</b> &lt;tag&gt;", "text & bold <tag>"),
    ],
)
def test_html_to_text(html, text):
    assert html_to_text(html) == text


@pytest.mark.parametrize("chunk_size", [1, 5, 7, 12, 4096])
def test_entity_neutralising_stream_is_transparent_for_real_dumps(fixtures_dir, chunk_size):
    """Cutting the stream anywhere (inside `&amp;`, `&#xA;`) changes no attribute of any row."""
    from lxml import etree

    from opencorpus_dagster.connectors.stackexchange import _EntityNeutralisingStream

    raw = gzip.decompress((fixtures_dir / "stackexchange" / COFFEE / "Posts.xml.gz").read_bytes())[:60_000]
    raw = raw[: raw.rfind(b"\n  <row")] + b"\n</posts>\n"

    class Chunked:
        def __init__(self, data):
            self.data, self.position = data, 0

        def read(self, size):
            chunk = self.data[self.position : self.position + min(size, chunk_size)]
            self.position += len(chunk)
            return chunk

    expected = [dict(e.attrib) for e in etree.fromstring(raw.lstrip(b"\xef\xbb\xbf")).iter("row")]
    stream = _EntityNeutralisingStream(Chunked(raw), chunk_size=chunk_size)
    actual = [dict(e.attrib) for _, e in etree.iterparse(stream, tag="row", resolve_entities=False, no_network=True, load_dtd=False)]
    assert len(actual) == len(expected) > 50
    assert actual == expected
