"""Synthetic EU card transactions for the fraud demo: realistic enough that a model has something to learn.

The demo must run anywhere without downloading data, so the data is made here, deterministically from a
seed. Legitimate spending follows per-category log-normal amounts, a daytime hour profile, mostly domestic
card-present use and occasional shopping sessions. Fraud comes as *attack episodes* on compromised cards:
short bursts, often at night, online or with a cloned magstripe, abroad, in resellable categories, for
amounts unrelated to the cardholder's habits, sometimes after a small card-testing charge. A few attack
rows are never disputed (label 0) and a little background fraud looks ordinary, so the task is learnable
(ROC-AUC above 0.9) but not trivial.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

# name: (share of legitimate transactions, median amount EUR, log-sd, share online, share of fraud)
CATEGORIES: dict[str, tuple[float, float, float, float, float]] = {
    "grocery": (0.24, 35.0, 0.6, 0.03, 0.02),
    "restaurant": (0.15, 28.0, 0.5, 0.05, 0.02),
    "fuel": (0.09, 55.0, 0.35, 0.00, 0.03),
    "retail": (0.15, 60.0, 0.8, 0.35, 0.12),
    "pharmacy": (0.05, 22.0, 0.6, 0.10, 0.01),
    "transport": (0.08, 12.0, 0.7, 0.45, 0.02),
    "entertainment": (0.07, 30.0, 0.7, 0.55, 0.03),
    "electronics": (0.05, 180.0, 1.0, 0.50, 0.25),
    "travel": (0.04, 300.0, 0.9, 0.70, 0.10),
    "jewelry": (0.01, 250.0, 1.1, 0.20, 0.09),
    "gaming": (0.04, 20.0, 0.9, 0.95, 0.14),
    "gift_cards": (0.03, 50.0, 0.6, 0.60, 0.17),
}
CATEGORY_NAMES = list(CATEGORIES)
EU_COUNTRIES = ["DE", "FR", "IT", "ES", "NL", "BE", "PL", "AT", "PT", "IE"]
EU_WEIGHTS = np.array([0.25, 0.20, 0.13, 0.12, 0.08, 0.05, 0.07, 0.04, 0.03, 0.03])
NON_EU_COUNTRIES = ["GB", "US", "CH", "TR", "AE", "BR", "TH", "MX", "CN", "IN"]
COUNTRIES = EU_COUNTRIES + NON_EU_COUNTRIES
CHANNELS = ["pos", "online"]
DEVICES = ["chip", "contactless", "magstripe", "mobile_app", "web_mobile", "web_desktop"]
# Device mix per population: card-present devices first, card-not-present after.
_POS_DEVICES = {"legit": [0.55, 0.42, 0.03], "fraud": [0.20, 0.30, 0.50]}
_ONLINE_DEVICES = {"legit": [0.45, 0.25, 0.30], "fraud": [0.15, 0.25, 0.60]}
# Relative activity by hour of the day (CET): people sleep, fraudsters work when cardholders do.
_LEGIT_HOURS = np.array(
    [2, 1, 1, 1, 1, 2, 4, 7, 9, 10, 11, 13, 14, 12, 11, 11, 12, 14, 14, 12, 10, 8, 5, 3.0]
)
_FRAUD_HOURS = np.array([9, 10, 10, 9, 8, 6, 4, 3, 3, 4, 4, 5, 5, 5, 4, 4, 4, 5, 5, 5, 6, 6, 7, 8.0])

START = datetime(2026, 1, 5, tzinfo=UTC)  # winter time: CET is UTC+1 over the whole span
SPAN_DAYS = 60
ATTACK_ROW_SHARE = 0.0046  # rows that belong to attack episodes
UNDISPUTED_ATTACK_SHARE = 0.07  # attack rows the cardholder never reported: labelled 0
BACKGROUND_FRAUD_RATE = 0.0006  # fraud among ordinary-looking rows: the part no model catches
REPLAY_SHARE = 0.002  # the feed re-sends some records: ingest must drop them

RAW_SCHEMA = pa.schema(
    [
        pa.field("transaction_id", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("card_id", pa.int64(), nullable=False),
        pa.field("card_country", pa.string(), nullable=False),
        pa.field("merchant_id", pa.int64(), nullable=False),
        pa.field("merchant_category", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("device", pa.string(), nullable=False),
        pa.field("hour", pa.int8(), nullable=False),
        pa.field("distance_from_home_km", pa.float64(), nullable=False),
        pa.field("secs_since_prev_tx", pa.float64()),  # null on a card's first transaction
        pa.field("is_fraud", pa.int8(), nullable=False),
    ]
)


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def _times(rng: np.random.Generator, hours: np.ndarray, n: int) -> np.ndarray:
    """Seconds since START: a uniform day, an hour from the profile (CET), a uniform moment within it."""
    day = rng.integers(0, SPAN_DAYS, n)
    hour_utc = (_pick(rng, hours, n) - 1) % 24
    return (day * 86_400 + hour_utc * 3_600 + rng.random(n) * 3_600).astype(np.float64)


def _pick_rows(rng: np.random.Generator, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One draw per row from a row-specific categorical distribution (``table[rows]``), vectorised."""
    cum = np.cumsum(table[rows], axis=1)
    draws = rng.random(len(rows))[:, None] * cum[:, -1:]
    return np.minimum((draws > cum).sum(axis=1), table.shape[1] - 1)


def _country(rng: np.random.Generator, home: np.ndarray, p_abroad: np.ndarray, p_non_eu: float) -> np.ndarray:
    """Merchant country index: home, another EU country or outside the EU."""
    n = len(home)
    abroad = rng.random(n) < p_abroad
    non_eu = abroad & (rng.random(n) < p_non_eu)
    other_eu = (home + 1 + rng.integers(0, len(EU_COUNTRIES) - 1, n)) % len(EU_COUNTRIES)
    country = np.where(abroad, other_eu, home)
    return np.where(non_eu, len(EU_COUNTRIES) + rng.integers(0, len(NON_EU_COUNTRIES), n), country)


def _distance(
    rng: np.random.Generator, home: np.ndarray, country: np.ndarray, fraud: np.ndarray
) -> np.ndarray:
    """Km from the cardholder's home: local use is near, abroad is far; local fraud a bit off-pattern."""
    n = len(home)
    median = np.where(country == home, np.where(fraud, 40.0, 8.0), 900.0)
    median = np.where(country >= len(EU_COUNTRIES), 4_000.0, median)
    return np.round(np.minimum(median * np.exp(rng.normal(0.0, 0.9, n)), 19_000.0), 1)  # on Earth


def _attack_rows(rng: np.random.Generator, n_rows: int, card_weights: np.ndarray) -> dict[str, np.ndarray]:
    """Bursts of 1-6+ transactions minutes apart on one compromised card, with the fraudster's habits."""
    sizes = 1 + rng.poisson(2.0, n_rows)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n_rows)) + 1]
    sizes[-1] -= int(sizes.sum()) - n_rows
    sizes = sizes[sizes > 0]
    episode = np.repeat(np.arange(len(sizes)), sizes)
    first = np.r_[True, episode[1:] != episode[:-1]]
    gaps = np.where(first, 0.0, 10.0 + rng.exponential(150.0, n_rows))
    start = np.repeat(_times(rng, _FRAUD_HOURS, len(sizes)), sizes)
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], sizes)
    online = np.repeat(rng.random(len(sizes)) < 0.7, sizes)
    p_fraud = np.array([v[4] for v in CATEGORIES.values()])
    category = _pick(rng, p_fraud, n_rows)
    testing = first & (rng.random(n_rows) < 0.35)  # a small charge to check that the card works
    category = np.where(testing, CATEGORY_NAMES.index("gaming"), category)
    median = np.array([v[1] for v in CATEGORIES.values()])[category] * 2.5
    amount = np.where(testing, rng.uniform(0.5, 5.0, n_rows), median * np.exp(rng.normal(0, 0.8, n_rows)))
    return {
        "card": np.repeat(_pick(rng, card_weights, len(sizes)), sizes),
        "t": start + offset,
        "category": category,
        "online": online | testing,
        "amount": amount,
        "p_abroad": np.repeat(np.full(len(sizes), 0.65), sizes),
        "fraud": np.ones(n_rows, dtype=bool),
    }


def _legit_rows(
    rng: np.random.Generator, n_rows: int, card_weights: np.ndarray, spend: np.ndarray
) -> dict[str, np.ndarray]:
    """Everyday spending, with 12% of rows placed minutes after another (a shopping session)."""
    n_follow = int(n_rows * 0.12)
    card = _pick(rng, card_weights, n_rows - n_follow)
    t = _times(rng, _LEGIT_HOURS, len(card))
    parent = rng.integers(0, len(card), n_follow)
    card = np.r_[card, card[parent]]
    t = np.r_[t, t[parent] + 20.0 + rng.exponential(300.0, n_follow)]
    share, median, sd, p_online = (np.array(v) for v in list(zip(*CATEGORIES.values(), strict=True))[:4])
    category = _pick(rng, share, n_rows)
    online = rng.random(n_rows) < p_online[category]
    amount = median[category] * spend[card] * np.exp(rng.normal(0.0, sd[category]))
    p_abroad = np.where(online, 0.15, 0.05)
    return {
        "card": card,
        "t": t,
        "category": category,
        "online": online,
        "amount": amount,
        "p_abroad": p_abroad,
        "fraud": np.zeros(n_rows, dtype=bool),
    }


def _background_fraud(
    rng: np.random.Generator,
    night: np.ndarray,
    online: np.ndarray,
    non_eu: np.ndarray,
    amount: np.ndarray,
    magstripe: np.ndarray,
) -> np.ndarray:
    """Fraud among ordinary rows, likelier on risky features; intercept solved to hit the target rate."""
    z = 1.0 * night + 0.6 * online + 1.2 * non_eu + 0.5 * (np.log(amount) - 3.5) + 1.5 * magstripe
    lo, hi = -20.0, 5.0
    for _ in range(50):  # bisection: deterministic, monotone in the intercept
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(mid + z)))) < BACKGROUND_FRAUD_RATE else (lo, mid)
    return rng.random(len(z)) < 1 / (1 + np.exp(-(lo + z)))


def make_table(rows: int, seed: int) -> pa.Table:
    """``rows`` distinct transactions (plus ~0.2% replayed records), sorted by time, in RAW_SCHEMA."""
    if rows < 1_000:
        raise ValueError(f"rows must be at least 1000, got {rows}")
    rng = np.random.default_rng(seed)
    n_cards = max(100, rows // 40)
    card_weights = np.exp(rng.normal(0.0, 0.8, n_cards))
    spend = np.exp(rng.normal(0.0, 0.35, n_cards))  # some cardholders spend more than others
    home = _pick(rng, EU_WEIGHTS, n_cards)
    n_attack = max(1, round(rows * ATTACK_ROW_SHARE))
    parts = [
        _legit_rows(rng, rows - n_attack, card_weights, spend),
        _attack_rows(rng, n_attack, card_weights),
    ]
    d = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    d["t"] = np.minimum(d["t"], SPAN_DAYS * 86_400.0 - 1.0)
    n, card, fraud, online = rows, d["card"], d["fraud"], d["online"]
    country = _country(rng, home[card], d["p_abroad"], np.where(fraud, 0.6, 0.3))
    pos_dev = np.array([_POS_DEVICES["legit"], _POS_DEVICES["fraud"]])
    web_dev = np.array([_ONLINE_DEVICES["legit"], _ONLINE_DEVICES["fraud"]])
    device = np.where(
        online, 3 + _pick_rows(rng, web_dev, fraud.astype(int)), _pick_rows(rng, pos_dev, fraud.astype(int))
    )
    ms = np.floor(d["t"] * 1_000).astype(np.int64)
    hour = ((ms // 3_600_000 + 1) % 24).astype(np.int8)
    amount = np.round(np.maximum(d["amount"], 0.5), 2)
    pool = np.array([2_000, 3_000, 400, 5_000, 800, 300, 600, 700, 300, 200, 150, 100])[d["category"]]
    merchant = d["category"] * 100_000 + (pool * rng.random(n) ** 2).astype(np.int64)
    label = np.where(
        fraud,
        rng.random(n) >= UNDISPUTED_ATTACK_SHARE,
        _background_fraud(rng, hour < 6, online, country >= len(EU_COUNTRIES), amount, device == 2),
    )
    # Order by card then time to derive the gap to the card's previous transaction.
    by_card = np.lexsort((ms, card))
    gap = np.diff(ms[by_card]) / 1_000.0
    gap = np.r_[np.nan, np.where(card[by_card][1:] == card[by_card][:-1], gap, np.nan)]
    secs_prev = np.empty(n)
    secs_prev[by_card] = gap
    order = np.lexsort((card, ms))
    replays = rng.choice(n, size=round(n * REPLAY_SHARE), replace=False)
    rows_out = np.sort(np.r_[np.arange(n), replays], kind="stable")  # a replay follows its original
    idx = order[rows_out]
    codes = {
        "card_country": home[card],
        "country": country,
        "merchant_category": d["category"],
        "device": device,
        "channel": online.astype(np.int64),
    }
    vocab = {
        "card_country": COUNTRIES,
        "country": COUNTRIES,
        "merchant_category": CATEGORY_NAMES,
        "device": DEVICES,
        "channel": CHANNELS,
    }
    columns = {
        "transaction_id": 1_000_000 + rows_out,
        "timestamp": START.timestamp() * 1_000 + ms[idx],
        "card_id": 400_000 + card[idx],
        "merchant_id": merchant[idx],
        "amount": amount[idx],
        "hour": hour[idx],
        "distance_from_home_km": _distance(rng, home[card], country, fraud)[idx],
        "secs_since_prev_tx": secs_prev[idx],
        "is_fraud": label[idx].astype(np.int8),
    }
    arrays = []
    for field in RAW_SCHEMA:
        if field.name in codes:
            dictionary = pa.array(vocab[field.name], pa.string())
            arr = pa.DictionaryArray.from_arrays(pa.array(codes[field.name][idx], pa.int32()), dictionary)
            arrays.append(arr.cast(pa.string()))
        elif field.name == "timestamp":
            arrays.append(pa.array(columns["timestamp"].astype(np.int64), pa.int64()).cast(field.type))
        else:
            values = columns[field.name]
            arrays.append(pa.array(values, field.type, from_pandas=field.nullable))
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)
