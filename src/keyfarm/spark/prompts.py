"""The prompt signal on Spark as a map and a reduce by band bucket (keyfarm.signals.prompt's incidence).

The local signal needs three population facts: how many distinct prompts a key sent (its tie),
how many distinct prompts share a band bucket (a bucket of one prompt is folded into that prompt's
`pdup:` token), and how many accounts reach a prompt or a bucket (a token on one account links
nothing). None of them needs the prompts in one place:

- map (`mapInPandas`, stages.prompt_text_stage): each distinct (key, prompt) is normalised and hashed; map
  (stages.prompt_band_stage): each distinct normalised text is MinHashed and band-hashed with the
  local signal's own functions, one (text, band, bucket) row per band;
- reduce (Spark SQL aggregations, hash-partitioned): distinct texts per (band, bucket), distinct
  accounts per text and per bucket, distinct texts per key; then the local signal's weights:
  `pdup:<text>` with tie × (solo bands) / bands, `lsh:<band>:<bucket>` with tie / bands, where
  tie = min(1, chatty_prompts / distinct texts of the key). The arithmetic is the same IEEE double
  operations in the same order as signals.prompt, so the weights are bit-identical.

Only key, token and weight leave this stage: the Spark engine's later stages read nothing else
of an incidence. Texts are identified by their 64-bit hash (the `pdup:` id) after the map.
"""
from __future__ import annotations


def _hex16(column):
    """A long column as 16 lower-case hex digits of its 64 bits (the local signal's f"{v:016x}")."""
    from pyspark.sql import functions as F

    return F.lower(F.lpad(F.hex(column), 16, "0"))


def prompt_incidence(ok, bc, config, per_batch, keep=lambda frame: frame):
    """(key, token, weight) of the prompt signal from the valid requests `ok` (a Spark DataFrame
    with key and prompt). `bc` is the broadcast WorkerContext, `per_batch` the engine's
    mapInPandas adapter, `keep` persists a frame the plan reads more than once (the engine
    unpersists it at the end)."""
    from pyspark.sql import functions as F

    from keyfarm.spark import stages

    cfg = config.prompt
    pairs = ok.filter(F.col("prompt").isNotNull()).select("key", "prompt").distinct()
    texts = keep(pairs.mapInPandas(per_batch(stages.prompt_text_stage, bc), stages.PROMPT_TEXT_SCHEMA))
    key_text = texts.select("key", "account", "text_id").distinct()
    # read by the per-bucket count, its join and (through it) the solo counts and shared buckets:
    # unpersisted, the MinHash map ran once per reader (3 runs of every batch, counted in a 5k world)
    bands = keep(texts.select("text_id", "text").dropDuplicates(["text_id"])
                 .mapInPandas(per_batch(stages.prompt_band_stage, bc), stages.PROMPT_BAND_SCHEMA))

    # distinct texts per bucket: a bucket of one text is "solo" (its text's pdup token covers it)
    per_bucket = bands.groupBy("band", "bucket").agg(F.count("*").alias("n_texts"))
    bands = bands.join(per_bucket, ["band", "bucket"])
    n_solo = bands.groupBy("text_id").agg(F.sum((F.col("n_texts") == 1).cast("long")).alias("n_solo"))
    # a key's tie: min(1, chatty / distinct texts), as signals.prompt computes it
    tie = key_text.groupBy("key").agg(F.count("*").alias("n_distinct")) \
        .select("key", F.least(F.lit(1.0), F.lit(float(cfg.chatty_prompts)) / F.col("n_distinct")).alias("tie"))
    key_text = keep(key_text.join(tie, "key"))

    text_accounts = key_text.groupBy("text_id").agg(F.countDistinct("account").alias("n_acc"))
    pdup_texts = n_solo.filter(F.col("n_solo") > 0).join(text_accounts.filter(F.col("n_acc") >= 2), "text_id")
    pdup = key_text.join(pdup_texts, "text_id").select(
        "key", F.concat(F.lit("pdup:"), _hex16(F.col("text_id"))).alias("token"),
        (F.col("tie") * F.col("n_solo") / F.lit(cfg.bands)).alias("weight"))

    shared = bands.filter(F.col("n_texts") >= 2).select("text_id", "band", "bucket") \
        .join(key_text, "text_id")
    bucket_accounts = shared.groupBy("band", "bucket").agg(F.countDistinct("account").alias("n_acc")) \
        .filter(F.col("n_acc") >= 2)
    lsh = shared.join(bucket_accounts, ["band", "bucket"]).groupBy("band", "bucket", "key") \
        .agg(F.max("tie").alias("tie")).select(
            "key", F.concat(F.lit("lsh:"), F.col("band").cast("string"), F.lit(":"), _hex16(F.col("bucket")))
            .alias("token"), (F.col("tie") / F.lit(cfg.bands)).alias("weight"))
    return pdup.unionByName(lsh)
