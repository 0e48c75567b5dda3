"""The catalog's burn-rate table and alert labels: what it says is what every SLO's tiers and
every alert's routing use, and a wrong table is refused with the row it is about."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.catalog import Catalog
from tests.helpers import HOME

CATALOG = HOME / "parameters" / "catalog.yaml"


def with_changes(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(CATALOG.read_text())
    raw.update(changes)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_catalog_table_decides_every_slos_tiers(tmp_path: Path) -> None:
    catalog = Catalog.load(CATALOG, HOME / "runbooks")
    api = next(s for s in catalog.slos if s.name == "api-availability")
    assert [(t.burn_rate, t.severity) for t in catalog.tiers_of(api)] == [
        (13.44, "page"),
        (5.6, "page"),
        (2.8, "ticket"),
        (0.93, "ticket"),
    ]
    one = [{"budget": 0.05, "long": "2h", "short": "10m", "action": "page", "for": "5m"}]
    changed = Catalog.load(with_changes(tmp_path, burn_rate_tiers=one), HOME / "runbooks")
    (tier,) = changed.tiers_of(api)
    assert (tier.burn_rate, tier.long_window, tier.for_) == (16.8, "2h", "5m")  # 0.05 * 672 h / 2 h


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"budget": 0.02, "long": "1h", "short": "5m", "action": "wake-everyone"}, "action page or ticket"),
        ({"budget": 0.02, "long": "5m", "short": "1h", "action": "page"}, "short < long"),
        ({"budget": 2, "long": "1h", "short": "5m", "action": "page"}, "budget must be in"),
        ({"budget": 0.02, "long": "an hour", "short": "5m", "action": "page"}, "not a duration"),
        ({"long": "1h", "short": "5m", "action": "page"}, "budget"),
    ],
)
def test_a_wrong_tier_is_refused_with_its_row(tmp_path: Path, row: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=r"burn_rate_tiers\[0\]") as err:
        Catalog.load(with_changes(tmp_path, burn_rate_tiers=[row]), HOME / "runbooks")
    assert says in str(err.value)


def test_an_alert_naming_an_unknown_slo_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(CATALOG.read_text())
    raw["alerts"][0]["slo"] = "api-availabilty"
    with pytest.raises(ConfigError, match="api-availabilty"):
        Catalog.load(with_changes(tmp_path, alerts=raw["alerts"]), HOME / "runbooks")
