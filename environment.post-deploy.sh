#!/usr/bin/env bash
# Snakemake runs this once, inside the environment it has just made from
# environment.yml for `--use-conda`, from the folder it was started in: the
# dlmark checkout. It installs the dlmark package there (editable, so the
# environment follows the checkout's code), which every job script imports.
set -euo pipefail
if ! grep -qs '^name = "dlmark"$' pyproject.toml; then
    echo "environment.post-deploy.sh: run snakemake from the dlmark folder (no dlmark pyproject.toml in $PWD)" >&2
    exit 1
fi
python -m pip install --quiet --no-deps --editable "$PWD"
python -c "import dlmark"
