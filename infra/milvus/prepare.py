"""Prepare a Milvus standalone server from the PyPI package `milvus` (2.3.5).

The package ships the Milvus standalone binary and its shared libraries
lzma-compressed, plus a config template. This script, run by
infra/stack/milvus.sh before every start, does what the package's own
`default_server` does, minus running the process, so the stack script can
launch the binary itself (its pid is then the real server's):

- unpacks the binary and libraries into HOME/bin, again only when a
  compressed file changed (md5 stamp per file, the package's own scheme);
- renders HOME/configs/milvus.yaml from the package's template with every port
  given on the command line, every component registered as 127.0.0.1, data
  under HOME, logs to stdout; the embedded etcd gets its own config
  (HOME/configs/embed-etcd.yaml) so its client and peer ports are ours too;
- writes HOME/configs/glog.conf so the C++ core logs to stderr as well.

It exits non-zero with a one-line message when the package is missing.
Only the standard library is used: it runs with the project's venv Python.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import lzma
import re
import shutil
import sys
from pathlib import Path

# template placeholder: {{ key }}, {{ key: default }}, {{ key(type): default }}
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)(?:\([a-z]+\))?\s*(?::\s*([^}]*?))?\s*\}\}")
# a `key: value  # comment` line of the template, with its indentation
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?P<value>[^#]*)(?P<comment>#.*)?$")
# components that register an address in etcd; unset, they pick the first
# non-loopback interface, which is wrong for a server that must stay local
# seconds; see prepare()
_STOP_TIMEOUT_S = 5
_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)


class PrepareError(Exception):
    """The Milvus package or its files are not where they should be."""


def package_data() -> Path:
    """Return the `milvus` package's data folder (binaries and template)."""
    spec = importlib.util.find_spec("milvus")
    if spec is None or spec.origin is None:
        msg = "the PyPI package 'milvus' is not installed in this Python (run 'make setup')"
        raise PrepareError(msg)
    data = Path(spec.origin).parent / "data"
    if not (data / "bin" / "milvus.lzma").is_file():
        msg = f"{data}/bin/milvus.lzma is missing: is 'milvus' the Milvus server package (2.3.x)?"
        raise PrepareError(msg)
    return data


def unpack(data: Path, bin_dir: Path) -> None:
    """Decompress every *.lzma of the package into bin_dir, skipping unchanged ones."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for packed in sorted((data / "bin").glob("*.lzma")):
        target = bin_dir / packed.name.removesuffix(".lzma")
        stamp = target.with_name(target.name + ".lzma.md5")
        digest = hashlib.md5(packed.read_bytes()).hexdigest()  # noqa: S324 - a change marker, not security
        if target.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            continue
        partial = target.with_name(target.name + ".partial")
        with lzma.open(packed) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        partial.chmod(0o755)
        partial.replace(target)
        stamp.write_text(digest)


def render(template: str, values: dict[str, str], overrides: dict[str, str]) -> str:
    """Fill the template's placeholders, then set the dotted keys in overrides.

    A placeholder without a value keeps its template default. An override must
    name a key that exists in the template, so a renamed key fails loudly.
    """

    def fill(match: re.Match[str]) -> str:
        key, default = match.group(1), match.group(2)
        if key in values:
            return values[key]
        if default is None:
            msg = f"template placeholder {key!r} has no default and no value"
            raise PrepareError(msg)
        return default.strip()

    lines = _PLACEHOLDER.sub(fill, template).splitlines()
    path: list[str] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = _KEY_LINE.match(line)
        if m is None or line.lstrip().startswith("#"):
            continue
        depth = len(m["indent"]) // 2
        path = [*path[:depth], m["key"]]
        dotted = ".".join(path)
        if dotted in overrides:
            lines[i] = f"{m['indent']}{m['key']}: {overrides[dotted]}"
            seen.add(dotted)
    missing = sorted(set(overrides) - seen)
    if missing:
        msg = f"keys not found in the Milvus config template: {', '.join(missing)}"
        raise PrepareError(msg)
    return "\n".join(lines) + "\n"


def add_child(text: str, section: str, child: str) -> str:
    """Insert child (YAML, indented as a first-level key) as section's first key."""
    text, count = re.subn(rf"(?m)^{section}:\n", f"{section}:\n  {child}\n", text)
    if count != 1:
        msg = f"the Milvus config template has no single top-level {section!r} section"
        raise PrepareError(msg)
    return text


def embed_etcd_config(client_port: int, peer_port: int) -> str:
    """Return the embedded etcd's config: both listeners on 127.0.0.1 only."""
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return (
        "name: milvus-embed-etcd\n"
        f"listen-client-urls: {client}\n"
        f"advertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\n"
        f"initial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: milvus-embed-etcd={peer}\n"
    )


# glog for the C++ core (segcore, knowhere): stderr, which the stack log captures
_GLOG_CONF = """\
--logtostdout=false
--logtostderr=true
--alsologtostderr=false
# 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
--minloglevel=1
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line: the server's home folder and every port."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, required=True, help="folder for bin/, configs/ and data")
    p.add_argument("--port", type=int, required=True, help="gRPC port clients connect to")
    p.add_argument("--internal-port", type=int, required=True, help="proxy's internal gRPC port")
    p.add_argument("--etcd-port", type=int, required=True, help="embedded etcd client port")
    p.add_argument("--etcd-peer-port", type=int, required=True, help="embedded etcd peer port")
    p.add_argument("--root-coord-port", type=int, required=True)
    p.add_argument("--query-coord-port", type=int, required=True)
    p.add_argument("--query-node-port", type=int, required=True)
    p.add_argument("--index-coord-port", type=int, required=True)
    p.add_argument("--index-node-port", type=int, required=True)
    p.add_argument("--data-coord-port", type=int, required=True)
    p.add_argument("--data-node-port", type=int, required=True)
    return p.parse_args(argv)


def prepare(args: argparse.Namespace) -> None:
    """Unpack the binaries and write the configs under args.home."""
    data = package_data()
    home: Path = args.home.resolve()
    configs = home / "configs"
    storage = home / "storage"
    for folder in (configs, storage):
        folder.mkdir(parents=True, exist_ok=True)
    unpack(data, home / "bin")

    values = {
        "etcd_port": str(args.etcd_port),
        "etcd_log_level": "warn",
        "etcd_log_path": "stdout",
        "etcd_data_dir": str(home / "etcd"),
        "local_storage_dir": str(storage),
        "rocksmq_data_dir": str(home / "rocksmq"),
        "system_log_path": '""',  # no log files: stdout goes to the stack log
        "proxy_port": str(args.port),
        "proxy_internal_port": str(args.internal_port),
        "root_coord_port": str(args.root_coord_port),
        "query_coord_port": str(args.query_coord_port),
        "query_node_port": str(args.query_node_port),
        "index_coord_port": str(args.index_coord_port),
        "index_node_port": str(args.index_node_port),
        "data_coord_port": str(args.data_coord_port),
        "data_node_port": str(args.data_node_port),
    }
    overrides = {f"{c}.ip": "127.0.0.1" for c in _COMPONENTS}
    overrides["etcd.endpoints"] = f"127.0.0.1:{args.etcd_port}"
    overrides["natsmq.server.storeDir"] = str(home / "nats")
    overrides["natsmq.server.monitor.logFile"] = str(home / "nats.log")
    # stop must finish inside the stack's 20 s TERM window: 2.3 stops its
    # coordinators first, and the query node then waits for them until this
    # timeout, after which the server exits by itself
    overrides["common.gracefulStopTimeout"] = str(_STOP_TIMEOUT_S)
    # Bounded-consistency reads (the cache's lookups) see writes older than
    # this; 5 s by default, 500 ms keeps a fresh cache entry servable sooner.
    overrides["common.gracefulTime"] = "500"
    text = render((data / "config.yaml.template").read_text(encoding="utf-8"), values, overrides)
    # keys the template lacks
    etcd_conf = configs / "embed-etcd.yaml"
    text = add_child(text, "etcd", f"config:\n    path: {etcd_conf}")
    text = add_child(text, "queryNode", f"gracefulStopTimeout: {_STOP_TIMEOUT_S}")
    (configs / "milvus.yaml").write_text(text, encoding="utf-8")
    etcd_conf.write_text(embed_etcd_config(args.etcd_port, args.etcd_peer_port), encoding="utf-8")
    (configs / "glog.conf").write_text(_GLOG_CONF, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run prepare(); a PrepareError becomes one line on stderr and exit 1."""
    try:
        prepare(parse_args(sys.argv[1:] if argv is None else argv))
    except PrepareError as exc:
        print(f"error: milvus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
