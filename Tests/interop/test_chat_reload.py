"""The chat plugin's settings are reloaded on SIGHUP (SPEC 7: "SIGHUP reloads what can be
reloaded"): a new max_message_body and chat_post_rate apply to the next posts; a bad value
is refused with its line and the old settings stay."""

import os
import signal
import time

from chat import chat, chat_templates  # noqa: F401  (fixtures)


def _wait_log(broker, text, timeout=5.0, after=0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in broker.log()[after:]):
            return True
        time.sleep(0.02)
    return False


def _rewrite_config(c, extra):
    path = os.path.join(c.broker.tmp, "parley.conf")
    with open(path, "w") as f:
        f.write("plugins = chat\nsys_interval = 1\n" + extra)


def test_sighup_reloads_max_message_body_and_post_rate(chat):  # noqa: F811
    c = chat(users=("alice",), rooms={"general": ("alice", [])}, config="max_message_body = 10\n")
    alice = c.client("alice")
    assert alice.publish("rooms/general/messages", "x" * 20, qos=1) == 0x99
    _rewrite_config(c, "max_message_body = 100\nchat_post_rate = 1/2\n")
    mark = len(c.broker.log())
    os.kill(c.broker.proc.pid, signal.SIGHUP)
    assert _wait_log(c.broker, "event=chat.reloaded", after=mark), "\n".join(c.broker.log()[-5:])
    assert alice.publish("rooms/general/messages", "x" * 20, qos=1) == 0
    # The new rate: a burst of 2 (one already spent above), then 0x97 (quota exceeded: a PUBACK cannot carry 0x96).
    codes = [alice.publish("rooms/general/messages", f"p{i}", qos=1) for i in range(3)]
    assert codes == [0, 0x97, 0x97], codes


def test_sighup_with_a_bad_chat_setting_keeps_the_old_ones(chat):  # noqa: F811
    c = chat(users=("alice",), rooms={"general": ("alice", [])}, config="max_message_body = 10\n")
    alice = c.client("alice")
    _rewrite_config(c, "max_message_body = lots\n")
    mark = len(c.broker.log())
    os.kill(c.broker.proc.pid, signal.SIGHUP)
    assert _wait_log(c.broker, "max_message_body must be a size", after=mark), "\n".join(c.broker.log()[-5:])
    assert any("parley.conf:3" in line for line in c.broker.log()[mark:]), "\n".join(c.broker.log()[mark:])
    assert alice.publish("rooms/general/messages", "x" * 20, qos=1) == 0x99
    assert alice.publish("rooms/general/messages", "short", qos=1) == 0
