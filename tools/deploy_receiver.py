"""Keep a deployment's model current: a webhook receiver for `model_version.activated` (and `label_class.renamed`).

Run it beside your detector (Python 3.9+, standard library only, no Django):

    python tools/deploy_receiver.py --app https://labels.example --token=API_TOKEN \
        --secret WEBHOOK_SECRET --out /srv/detector/models --port 9000

and add a webhook to http://<this host>:9000/ with the events `model_version.activated` and
`label_class.renamed` on the project's Webhooks page (the page shows the secret; the token is a manager's, from /account/token/).
Each time the app promotes a better model (or someone rolls back), this checks the signature,
downloads the version's weights (safetensors, architecture and class names in its metadata) into
`--out` as `v<number>.safetensors`, and then replaces `current.json`, which names the file, the
architecture, the class names, the holdout metrics and `score_threshold`: keep boxes scored at or
above it (the best F1 on the holdout when the version was trained; null for an uploaded version, which
the app never measured). When a class is renamed, current.json takes the installed version's class
names (and per-class metrics) anew from the app. Your detector reloads when current.json changes. A delivery seen before (X-Webhook-Delivery) is answered 200 and not downloaded again.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import tempfile
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

MAX_BODY = 1024 * 1024


def genuine(body: bytes, header: str, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


def write_atomically(path: Path, write) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the model from a detector run as another user
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def model_install(data: dict, *, app: str, token: str, out: Path) -> Path:
    """Download the version's weights, then point current.json at them."""
    weights = out / f"v{data['number']}.safetensors"
    if not weights.exists():
        request = urllib.request.Request(app.rstrip("/") + data["weights"], headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=300) as response:
            write_atomically(weights, lambda file: _copy(response, file))
    current = {key: data[key] for key in ("id", "number", "architecture", "class_names", "metrics")}
    current["weights"] = weights.name
    current["score_threshold"] = ((data.get("metrics") or {}).get("operating_point") or {}).get("threshold")
    write_atomically(out / "current.json", lambda file: file.write(json.dumps(current, indent=2).encode()))
    return weights


def names_refresh(*, app: str, token: str, out: Path) -> bool:
    """A class was renamed: the installed version's class names and metrics as the app now has them.
    False when no model is installed yet (the next activation brings the names)."""
    path = out / "current.json"
    if not path.exists():
        return False
    current = json.loads(path.read_text())
    request = urllib.request.Request(f"{app.rstrip('/')}/api/v1/model-versions/{current['id']}/",
                                     headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        version = json.load(response)
    current.update(class_names=version["class_names"], metrics=version["metrics"])
    write_atomically(path, lambda file: file.write(json.dumps(current, indent=2).encode()))
    return True


def _copy(source, target) -> None:
    while chunk := source.read(1024 * 1024):
        target.write(chunk)


def handler_for(*, app: str, token: str, secret: str, out: Path):
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._answer(413, "too large")
            body = self.rfile.read(length)
            if not genuine(body, self.headers.get("X-Webhook-Signature", ""), secret):
                return self._answer(401, "bad signature")
            delivery = self.headers.get("X-Webhook-Delivery", "")
            event = json.loads(body)
            if delivery in seen or event.get("event") not in ("model_version.activated", "label_class.renamed"):
                return self._answer(200, "nothing to do")
            if event["event"] == "label_class.renamed":
                try:
                    refreshed = names_refresh(app=app, token=token, out=out)
                except Exception as exc:
                    return self._answer(502, f"could not read the class names: {exc}")
                seen.add(delivery)
                return self._answer(200, "class names refreshed" if refreshed else "no model installed yet")
            try:
                weights = model_install(event["data"], app=app, token=token, out=out)
            except Exception as exc:  # the app retries a failed delivery later
                return self._answer(502, f"could not install the model: {exc}")
            seen.add(delivery)
            self.log_message("installed %s (v%s, holdout mAP %s)", weights, event["data"]["number"],
                             event["data"].get("metrics", {}).get("map"))
            return self._answer(200, f"installed {weights.name}")

        def _answer(self, status: int, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", required=True, help="the app's address, e.g. https://labels.example")
    parser.add_argument("--token", default=os.environ.get("DETECTOR_REVIEW_TOKEN"), help="a manager's API token")
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"), help="the webhook's secret")
    parser.add_argument("--out", type=Path, required=True, help="the folder the detector loads its model from")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    if not args.token or not args.secret:
        parser.error("give --token and --secret (or DETECTOR_REVIEW_TOKEN and WEBHOOK_SECRET)")
    args.out.mkdir(parents=True, exist_ok=True)
    server = HTTPServer((args.host, args.port), handler_for(app=args.app, token=args.token, secret=args.secret,
                                                           out=args.out))
    print(f"listening on {args.host}:{server.server_port}; models go to {args.out}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
