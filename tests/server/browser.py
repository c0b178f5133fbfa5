"""The web UI in a real browser: starts llama-server on bitnet-rs's libllama serving the UI built
by tests/server/ui_build.sh (`--path`), then runs tests/server/browser.mjs (headless Chromium
through playwright-core: send a message, watch the streamed reply, screenshot). With --e2e it
also runs the UI's own Playwright tests (tools/ui/tests/e2e) against the same server.

    python tests/server/browser.py --bin DIR --ours DIR --model FILE --ui-dist DIR --ui-src DIR
        [--screenshot FILE] [--chromium /usr/bin/chromium] [--e2e]
"""

import argparse
import os
import subprocess
import sys
import tempfile

from srv import Server, add_common_args

HERE = os.path.dirname(os.path.abspath(__file__))

# The UI's own playwright.config.ts builds the UI and serves it with http-server on :8181; this
# one points the same tests at llama-server and at the system Chromium instead.
E2E_CONFIG = """import {{ defineConfig }} from '@playwright/test';
export default defineConfig({{
\ttestDir: 'tests/e2e',
\ttestMatch: ['**/*.e2e.ts'],
\treporter: 'line',
\ttimeout: 60000,
\tworkers: 1,
\tuse: {{ baseURL: {url!r}, launchOptions: {{ executablePath: {chromium!r},
\t\targs: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] }} }}
}});
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--ui-dist", required=True, help="built UI (ui_build.sh dist=)")
    ap.add_argument("--ui-src", required=True, help="UI tree with node_modules (ui_build.sh ui_src=)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshot", default=None)
    ap.add_argument("--e2e", action="store_true", help="also run the UI's own e2e tests")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bitnet-srv-browser-")
    shot = args.screenshot or os.path.join(work, "ui.png")
    status = 0
    with Server(args.bin, args.model, lib=args.ours, log=os.path.join(work, "server.log"),
                threads=args.threads, args=["--path", args.ui_dist, "-n", 200]) as server:
        r = subprocess.run(["node", os.path.join(HERE, "browser.mjs"), server.url + "/", shot,
                            args.ui_src, args.chromium], timeout=300)
        print(f"browser: {'OK' if r.returncode == 0 else 'FAILED'}: screenshot {shot}")
        status |= r.returncode != 0
        if args.e2e:
            config = os.path.join(args.ui_src, "bitnet-e2e.config.ts")
            with open(config, "w", encoding="utf-8") as f:
                f.write(E2E_CONFIG.format(url=server.url, chromium=args.chromium))
            e = subprocess.run(["npx", "playwright", "test", "--config", config],
                               cwd=args.ui_src, timeout=600)
            print(f"browser: the UI's own e2e tests: exit {e.returncode}")
            status |= e.returncode != 0
        if not server.alive():
            print("browser: llama-server died")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
