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

With `--onnx`, a detector that runs onnxruntime, TensorRT or OpenVINO gets the version as ONNX
instead (`v<number>.onnx`, current.json's `format` says which): the receiver asks the app to export it
(`POST /api/v1/model-versions/{id}/exports/`; a worker makes and checks the file, seconds to a minute)
and answers 503 until the file is there, so the app sends the delivery again (after 10 s, then 1, 5
and 30 minutes) and the next one installs it. A delivery for a version that is no longer the active one
when it arrives (sent again after a later promotion, say) installs nothing.
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


class NotReady(Exception):
    """The app is still making the file: answer so that it sends the delivery again."""


def model_install(data: dict, *, app: str, token: str, out: Path, onnx: bool = False) -> Path | None:
    """Download the version's weights (or its ONNX file), then point current.json at them; None when the
    version is no longer the active one. Raises NotReady while the app makes the ONNX file."""
    if not _api(app, token, f"/api/v1/model-versions/{data['id']}/")["is_active"]:
        return None
    weights = out / f"v{data['number']}.{'onnx' if onnx else 'safetensors'}"
    if not weights.exists():
        source = _onnx_file(data, app=app, token=token) if onnx else data["weights"]
        request = urllib.request.Request(app.rstrip("/") + source, headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=300) as response:
            write_atomically(weights, lambda file: _copy(response, file))
    current = {key: data[key] for key in ("id", "number", "architecture", "class_names", "metrics")}
    current["weights"] = weights.name
    current["format"] = "onnx" if onnx else "safetensors"
    current["score_threshold"] = ((data.get("metrics") or {}).get("operating_point") or {}).get("threshold")
    write_atomically(out / "current.json", lambda file: file.write(json.dumps(current, indent=2).encode()))
    return weights


def _onnx_file(data: dict, *, app: str, token: str) -> str:
    """The API path of the version's checked ONNX file; asks for one first (the app returns the one it made)."""
    export = _api(app, token, f"/api/v1/model-versions/{data['id']}/exports/", {"format": "onnx"})
    if export["status"] in ("queued", "running"):
        raise NotReady(f"the app is making the ONNX file of v{data['number']} (export {export['id']}, "
                       f"{export['percent']:.0f}%); send again")
    if export["status"] != "succeeded":
        raise RuntimeError(f"the ONNX export of v{data['number']} {export['status']}: {export['error']}")
    return f"/api/v1/model-exports/{export['id']}/file/"


def _api(app: str, token: str, path: str, body: dict | None = None) -> dict:
    """GET (or, with a body, POST) one of the app's API endpoints; its JSON answer."""
    request = urllib.request.Request(
        app.rstrip("/") + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def names_refresh(*, app: str, token: str, out: Path) -> bool:
    """A class was renamed: the installed version's class names and metrics as the app now has them.
    False when no model is installed yet (the next activation brings the names)."""
    path = out / "current.json"
    if not path.exists():
        return False
    current = json.loads(path.read_text())
    version = _api(app, token, f"/api/v1/model-versions/{current['id']}/")
    current.update(class_names=version["class_names"], metrics=version["metrics"])
    write_atomically(path, lambda file: file.write(json.dumps(current, indent=2).encode()))
    return True


def _copy(source, target) -> None:
    while chunk := source.read(1024 * 1024):
        target.write(chunk)


def handler_for(*, app: str, token: str, secret: str, out: Path, onnx: bool = False):
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
                weights = model_install(event["data"], app=app, token=token, out=out, onnx=onnx)
            except NotReady as exc:
                return self._answer(503, str(exc))
            except Exception as exc:  # the app retries a failed delivery later
                return self._answer(502, f"could not install the model: {exc}")
            seen.add(delivery)
            if weights is None:
                return self._answer(200, f"v{event['data']['number']} is no longer the active version: not installed")
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
    parser.add_argument("--onnx", action="store_true", help="install each version as ONNX instead of safetensors")
    args = parser.parse_args()
    if not args.token or not args.secret:
        parser.error("give --token and --secret (or DETECTOR_REVIEW_TOKEN and WEBHOOK_SECRET)")
    args.out.mkdir(parents=True, exist_ok=True)
    server = HTTPServer((args.host, args.port), handler_for(app=args.app, token=args.token, secret=args.secret,
                                                           out=args.out, onnx=args.onnx))
    print(f"listening on {args.host}:{server.server_port}; models go to {args.out}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
