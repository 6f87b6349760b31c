"""Snakemake glue: summarise the run in results/environment.json."""

import datetime as dt

import pandas as pd

from dlmark import hardware, joblog, provenance, results

joblog.start(snakemake.log[0])
tables = {name: pd.read_csv(path) for name, path in snakemake.input.items()}
summary = {
    "written_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    "machine": snakemake.params.machine,
    "host": hardware.host_facts(),
    "devices": {d: hardware.device_name(d) for d in snakemake.params.devices},
    "cpu_threads": snakemake.params.threads,
    "workflow": provenance.workflow_version(),
    "config": snakemake.params.config,
    "config_hash": provenance.settings_hash(snakemake.params.config),
    "tables": {
        name: {
            "rows": len(frame),
            "machines": sorted(frame["machine"].astype(str).unique()),
            "status": frame["status"].value_counts().to_dict() if "status" in frame else None,
        }
        for name, frame in tables.items()
    },
}
results.write_json(snakemake.output[0], summary)
