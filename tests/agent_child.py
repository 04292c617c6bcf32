"""A stand-in training process for the agent's tests (standard library only; run as a script).

    python agent_child.py PLAN [CONTROL_DIR]

PLAN is a comma-separated list, one entry per epoch ($MSJOB_EPOCH; the last entry for later epochs):

* ``exit=N``: print OUTPUT_LINES lines, then exit with N;
* ``hang``: start a helper process in its own process group, then run until SIGTERM (exit by it: 143);
* ``stubborn``: like ``hang``, but ignore SIGTERM (only SIGKILL ends it);
* ``wait``: run until CONTROL_DIR/exit-<epoch> exists, then exit with the number written in it.

Every line starts with ``child:``; the helper's PID is printed as ``helper=<pid>``.
"""

import os
import signal
import subprocess
import sys
import time

OUTPUT_LINES = 100


def say(text, stream=sys.stdout):
    stream.write(f"child: {text}\n")
    stream.flush()


def main():
    plan = sys.argv[1].split(",")
    control = sys.argv[2] if len(sys.argv) > 2 else "."
    epoch = int(os.environ.get("MSJOB_EPOCH", "-1"))
    action = plan[min(max(epoch, 0), len(plan) - 1)]
    say(f"epoch={epoch} pid={os.getpid()} action={action}")
    if action.startswith("exit="):
        for i in range(OUTPUT_LINES):
            say(f"output line {i} of epoch {epoch}")
        code = int(action[5:])
        say(f"exiting with {code}", sys.stderr)
        sys.exit(code)
    if action in ("hang", "stubborn"):
        # A helper in the group (as a data loader would be): the group's stop must end it too.
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        say(f"helper={helper.pid}")
        if action == "stubborn":
            signal.signal(signal.SIGTERM, lambda *_: say("got SIGTERM, ignoring it"))
        else:
            def terminated(*_):
                say("got SIGTERM")
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
            signal.signal(signal.SIGTERM, terminated)
        while True:
            time.sleep(0.1)
    if action == "wait":
        flag = os.path.join(control, f"exit-{epoch}")
        while not os.path.exists(flag):
            time.sleep(0.1)
        with open(flag) as f:
            code = int(f.read().strip() or "0")
        say(f"told to exit with {code}")
        sys.exit(code)
    say(f"unknown action {action!r}", sys.stderr)
    sys.exit(99)


if __name__ == "__main__":
    main()
