"""Convert a model shipped as a GGUF file in a pip package: `python -m harp.cli.build_gguf model=smollm2`.

Writes the float32 Hugging Face folder `model.source` once (with its provenance record, harp_gguf.json);
a folder converted from the same pinned file is kept as it is.
"""

from __future__ import annotations

from harp.cli._app import check_model, log, stage
from harp.config import Config
from harp.errors import HarpError
from harp.models.gguf import build_from_gguf


@stage("build_gguf")
def main(cfg: Config, tracker) -> None:
    spec = cfg.model.gguf
    if spec is None:
        raise HarpError(
            f"model={cfg.model.name} names no GGUF file (conf/model/{cfg.model.name}.yaml has no gguf: block); "
            "build_gguf converts only such models."
        )
    record, converted = build_from_gguf(cfg.model.source, spec)
    check_model(cfg)  # the converted folder has the depth the config says
    log(tracker, {"parameters": record["parameters"], "convert_seconds": record["convert_seconds"]})
    what = f"converted in {record['convert_seconds']} s" if converted else "already converted from the same file"
    print(
        f"{cfg.model.name}: {spec.file} from {spec.package} {spec.version}, {record['parameters'] / 1e6:.1f}M "
        f"parameters, {what} -> {cfg.model.source}"
    )


if __name__ == "__main__":
    main()
