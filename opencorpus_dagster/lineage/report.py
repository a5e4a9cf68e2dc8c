"""Per-rule removal report: how many records each rule removed per source, and what it measured.

Answers "why were records dropped?" and, with the distribution of each rule's measured value
over every record it looked at, "what would change with another threshold?".
"""

from __future__ import annotations

from typing import Any

from opencorpus_dagster.lineage.store import LineageStore


def rule_report(store: LineageStore) -> list[dict[str, Any]]:
    """One row per (source, rule): records removed as terminal outcome, records measured, and
    the distribution of the measured value (min / max over partitions, partition medians' mean).

    Removals count terminal outcomes only (`outcomes` view), so they add up with the build
    summary; rules that measure without a drop (quality rules on kept records) appear with 0.
    """
    query = """
    WITH removed AS (
        SELECT source, reason AS rule, count(*) AS removed
        FROM outcomes WHERE outcome NOT IN ('kept') GROUP BY ALL
    ), measured AS (
        SELECT source, rule, sum(measured) AS measured, min(minimum) AS minimum,
               avg(median) AS median, max(maximum) AS maximum
        FROM rule_stats WHERE measured > 0 GROUP BY ALL
    )
    SELECT coalesce(r.source, m.source) AS source, coalesce(r.rule, m.rule) AS rule,
           coalesce(r.removed, 0) AS removed, coalesce(m.measured, 0) AS measured,
           m.minimum, m.median, m.maximum
    FROM removed r FULL OUTER JOIN measured m ON r.source = m.source AND r.rule = m.rule
    ORDER BY source, removed DESC, rule
    """
    with store.connection() as conn:
        cursor = conn.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
