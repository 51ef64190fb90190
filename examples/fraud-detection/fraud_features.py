"""Checks on the raw feed and the features the model learns from, in pyarrow and numpy only.

No pandas: preprocess runs on a function site whose address space is capped, and every library imported
there costs memory. Every behavioural feature is *causal*: it uses only a card's earlier transactions, so
the model sees at training time exactly what a real-time scorer would see, and the time-based test split
does not leak the future into the past.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fraud_data import CATEGORY_NAMES, CHANNELS, COUNTRIES, DEVICES, EU_COUNTRIES, RAW_SCHEMA

NO_HISTORY_S = 30 * 86_400.0  # "time since previous" for a card's first transaction
FEATURES = [
    "amount", "log_amount", "hour", "is_night", "day_of_week", "is_online",
    *(f"device_{d}" for d in DEVICES),
    "category_code", "country_code", "is_foreign", "is_non_eu", "log_distance_km", "log_secs_since_prev",
    "tx_count_1h", "tx_count_24h", "amount_sum_1h", "amount_sum_24h",
    "card_prev_tx", "amount_to_card_mean", "card_prev_foreign_share", "first_time_country",
    "first_time_merchant",
]  # fmt: skip
_VOCAB = {
    "card_country": COUNTRIES,
    "country": COUNTRIES,
    "merchant_category": CATEGORY_NAMES,
    "channel": CHANNELS,
    "device": DEVICES,
}


def validate(table: pa.Table) -> pa.Table:
    """The table in RAW_SCHEMA, or ValueError naming the first bad column (missing, mistyped, bad values).

    Lossless casts are accepted (int32 ids, dictionary-encoded strings, second-precision timestamps)
    because writers differ in such details; anything else means the feed changed and must stop here.
    """
    columns = []
    for field in RAW_SCHEMA:
        if field.name not in table.column_names:
            raise ValueError(f"column {field.name!r} is missing")
        column = table[field.name]
        if column.type != field.type:
            error = ValueError(f"column {field.name!r} has type {column.type}, expected {field.type}")
            if not _same_kind(column.type, field.type):
                raise error
            try:
                column = column.cast(field.type, safe=True)  # fails on overflow or lost precision
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise error from exc
        if not field.nullable and column.null_count:
            raise ValueError(f"column {field.name!r} has {column.null_count} nulls")
        columns.append(column)
    table = pa.Table.from_arrays(columns, schema=RAW_SCHEMA)
    _check_values(table)
    return table


def _same_kind(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a cast can only re-encode, never reinterpret: text stays text, numbers stay numbers, and a
    timestamp must carry a time zone (a naive one could be local time)."""
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual) and actual.tz is not None
    return False


def _check_values(table: pa.Table) -> None:
    """Domain checks: a wrong unit or a new category is as bad as a wrong type."""
    for name, vocab in _VOCAB.items():
        unknown = pc.filter(table[name], pc.invert(pc.is_in(table[name], pa.array(vocab))))
        if len(unknown):
            raise ValueError(f"column {name!r} has unknown value {unknown[0].as_py()!r}")
    ranges = {
        "amount": (0.01, 1e6),
        "hour": (0, 23),
        "distance_from_home_km": (0, 20_100),
        "secs_since_prev_tx": (0, 1e9),
        "is_fraud": (0, 1),
    }
    for name, (low, high) in ranges.items():
        values = table[name].to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[~np.isnan(values)] if table[name].null_count else values
        if not np.all((values >= low) & (values <= high)):  # also false for NaN
            raise ValueError(f"column {name!r} has values outside [{low}, {high}]")


def dedupe(table: pa.Table) -> pa.Table:
    """Keep the first record of each transaction_id: feeds re-send records after timeouts."""
    ids = table["transaction_id"].to_numpy()
    _, first = np.unique(ids, return_index=True)
    return table.take(np.sort(first)) if len(first) < len(ids) else table


def _codes(column: pa.ChunkedArray, vocab: list[str]) -> np.ndarray:
    return pc.index_in(column, value_set=pa.array(vocab)).to_numpy(zero_copy_only=False).astype(np.int64)


def _group_rank(keys: np.ndarray) -> np.ndarray:
    """Position of each row within its run of equal keys (keys already sorted)."""
    starts = np.r_[True, keys[1:] != keys[:-1]]
    start_index = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
    return np.arange(len(keys)) - start_index


def _first_time(card: np.ndarray, other: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """1 where the card meets ``other`` (a country, a merchant) for the first time."""
    order = np.lexsort((ms, other, card))
    key = card[order] * 10_000_000 + other[order]
    out = np.empty(len(card), dtype=np.float32)
    out[order] = _group_rank(key) == 0
    return out


def _window(card: np.ndarray, ms: np.ndarray, amount: np.ndarray, window_ms: int) -> tuple[np.ndarray, ...]:
    """Count and sum of the card's earlier transactions within ``window_ms`` (rows sorted by card, time)."""
    key = card * 10**11 + (ms - ms.min())  # < 10**11 ms apart (3 years): windows never cross cards
    lo = np.searchsorted(key, key - window_ms, side="left")
    csum = np.r_[0.0, np.cumsum(amount)]
    idx = np.arange(len(key))
    return (idx - lo).astype(np.float32), (csum[idx] - csum[lo]).astype(np.float32)


def build_features(table: pa.Table, test_fraction: float) -> pa.Table:
    """Model features (float32), the label, ids and a ``split`` column: the last ``test_fraction`` of the
    time span is ``test``. Features are rounded to float32 so that sklearn and ONNX see identical values."""
    ms = table["timestamp"].cast(pa.int64()).to_numpy()
    card = table["card_id"].to_numpy()
    order = np.lexsort((ms, card))  # card, then time: the order of every per-card feature
    card_s, ms_s = card[order], ms[order]
    amount = table["amount"].to_numpy()
    country = _codes(table["country"], COUNTRIES)
    foreign = (country != _codes(table["card_country"], COUNTRIES)).astype(np.float64)
    rank = _group_rank(card_s)
    prev_sum = np.r_[0.0, np.cumsum(amount[order])][:-1]
    prev_sum -= prev_sum[np.arange(len(rank)) - rank]  # minus the total before this card's first row
    prev_foreign = np.r_[0.0, np.cumsum(foreign[order])][:-1]
    prev_foreign -= prev_foreign[np.arange(len(rank)) - rank]
    with np.errstate(invalid="ignore", divide="ignore"):
        to_mean = np.where(rank > 0, amount[order] / (prev_sum / rank), 1.0)
        foreign_share = np.where(rank > 0, prev_foreign / rank, 0.0)
    out: dict[str, np.ndarray] = {}
    for name, values in {
        "card_prev_tx": rank,
        "amount_to_card_mean": to_mean,
        "card_prev_foreign_share": foreign_share,
    }.items():
        out[name] = np.empty(len(order), dtype=np.float32)
        out[name][order] = values
    for label, window in {"1h": 3_600_000, "24h": 86_400_000}.items():
        count, total = _window(card_s, ms_s, amount[order], window)
        out[f"tx_count_{label}"] = np.empty_like(count)
        out[f"tx_count_{label}"][order] = count
        out[f"amount_sum_{label}"] = np.empty_like(total)
        out[f"amount_sum_{label}"][order] = total
    hour = table["hour"].to_numpy().astype(np.float64)
    device = _codes(table["device"], DEVICES)
    secs_prev = table["secs_since_prev_tx"].fill_null(NO_HISTORY_S).to_numpy()
    out |= {
        "amount": amount,
        "log_amount": np.log1p(amount),
        "hour": hour,
        "is_night": hour < 6,
        "day_of_week": ((ms + 3_600_000) // 86_400_000 + 3) % 7,  # 0 = Monday, CET
        "is_online": _codes(table["channel"], CHANNELS) == CHANNELS.index("online"),
        **{f"device_{d}": device == i for i, d in enumerate(DEVICES)},
        "category_code": _codes(table["merchant_category"], CATEGORY_NAMES),
        "country_code": country,
        "is_foreign": foreign,
        "is_non_eu": country >= len(EU_COUNTRIES),
        "log_distance_km": np.log1p(table["distance_from_home_km"].to_numpy()),
        "log_secs_since_prev": np.log1p(secs_prev),
        "first_time_country": _first_time(card, country, ms),
        "first_time_merchant": _first_time(card, table["merchant_id"].to_numpy(), ms),
    }
    cutoff = ms.min() + (1.0 - test_fraction) * (ms.max() - ms.min())
    arrays = {
        "transaction_id": table["transaction_id"],
        "timestamp": table["timestamp"],
        **{name: pa.array(np.asarray(out[name], dtype=np.float32)) for name in FEATURES},
        "is_fraud": table["is_fraud"],
        "split": pa.array(np.where(ms >= cutoff, "test", "train")).dictionary_encode(),
    }
    return pa.table(arrays).replace_schema_metadata({"feature_columns": ",".join(FEATURES)})
