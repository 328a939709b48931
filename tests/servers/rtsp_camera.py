#!/usr/bin/python3
"""A real RTSP camera for tests: GStreamer's RTSP server on 127.0.0.1.

Run it with Debian's ``/usr/bin/python3`` (the GObject bindings, ``python3-gi``
and ``gir1.2-gst-rtsp-server-1.0``, are not in the project's venv)::

    /usr/bin/python3 tests/servers/rtsp_camera.py --port 0 --width 640 --height 360 --fps 25

It serves ``rtsp://127.0.0.1:PORT/cam``: a live test pattern with a running
clock, H.264 (x264, zero latency, a keyframe every 2 s, SPS/PPS before each
keyframe), payloaded for RTP, with RTCP sender reports like a real camera.
``--file CLIP.mkv`` serves a prepared H.264 Matroska file instead (looped per
client session, not live). ``--tls-cert``/``--tls-key`` (PEM) serve RTSPS.

When it listens, it prints one line ``ready rtsp://127.0.0.1:PORT/cam`` (or
``rtsps://``) on stdout and flushes it; ``--port 0`` picks a free port, and the
line tells which. SIGTERM or SIGINT stop it cleanly with exit code 0.

Only standard-library and GStreamer imports: no project code, so that it
behaves like an independent camera.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402

MOUNT = "/cam"


def launch_line(args: argparse.Namespace) -> str:
    pay = "rtph264pay name=pay0 pt=96 config-interval=1"
    if args.file:
        path = args.file.replace("\\", "\\\\").replace('"', '\\"')
        return f'( filesrc location="{path}" ! matroskademux ! h264parse ! {pay} )'
    keyint = max(1, 2 * args.fps)
    return (
        "( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
        "! clockoverlay "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={keyint} "
        f"bitrate={args.bitrate} "
        f"! h264parse ! {pay} )"
    )


def tls_auth(cert_path: str, key_path: str) -> GstRtspServer.RTSPAuth:
    """TLS for the RTSP connection, and anonymous access to every mount (no passwords)."""
    with open(cert_path, encoding="ascii") as f:
        pem = f.read()
    with open(key_path, encoding="ascii") as f:
        pem += f.read()
    auth = GstRtspServer.RTSPAuth()
    auth.set_tls_certificate(Gio.TlsCertificate.new_from_pem(pem, -1))
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
    auth.set_default_token(token)
    return auth


def anonymous_permissions(factory: GstRtspServer.RTSPMediaFactory) -> None:
    perms = GstRtspServer.RTSPPermissions()
    for permission in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                       GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        perms.add_permission_for_role("anonymous", permission, True)
    factory.set_permissions(perms)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8554, help="TCP port, 0 for any free port")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=800, help="kbit/s")
    p.add_argument("--file", help="serve this H.264 Matroska file instead of a live pattern")
    p.add_argument("--tls-cert", help="PEM certificate: serve RTSPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    if args.tls_cert:
        server.set_auth(tls_auth(args.tls_cert, args.tls_key))
        anonymous_permissions(factory)
    server.get_mount_points().add_factory(MOUNT, factory)

    loop = GLib.MainLoop()
    if not server.attach(None):
        print(f"rtsp_camera: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    port = server.get_bound_port()
    if port <= 0:
        print(f"rtsp_camera: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    def quit_loop() -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, quit_loop)
    scheme = "rtsps" if args.tls_cert else "rtsp"
    print(f"ready {scheme}://127.0.0.1:{port}{MOUNT}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
