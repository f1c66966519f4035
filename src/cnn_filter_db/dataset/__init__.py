"""The release folder: everything that lists, reads, writes or checks its tables.

- :mod:`.schema`: the Arrow schemas and Parquet options of the published tables.
- :mod:`.layout`: where each table lives, and the one rule for what belongs to a release
  (hidden and temporary entries never do).
- :mod:`.reader`: tables, one model's filters, one shard; page checksums verified.
- :mod:`.runs`: the streaming iterator over (model, layer) runs of filter shards, used by
  the validation scan and the analysis passes.
- :mod:`.writer`: the filter shard writer, a model's shards and metadata committed
  together, the small tables.
- :mod:`.manifest`: ``manifest.json`` built, written, parsed and checked; the fingerprint.
"""
