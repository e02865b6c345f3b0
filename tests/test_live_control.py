import os
import time

import mido
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from live.control import MidiMapping, OscListener, latest_changes, open_midi_input, parse_cc
from live.rate_limited_report import RateLimitedReport

SPECS = {"instID": (1.0, 2.0), "a": (0.0, 1.0), "p": (64.0, 76.0)}


class Recorder:
    """Stands in for LiveSynth: records the controls called, refuses what the engine refuses."""

    def __init__(self):
        self.calls = []

    def set(self, **values):
        for name, value in values.items():
            if name not in SPECS:
                raise ValueError(f"unknown parameter {name!r}")
        self.calls.append(("set", values))

    def note_on(self, note, velocity=100):
        self.calls.append(("note_on", note, velocity))

    def note_off(self, note):
        self.calls.append(("note_off", note))

    def bend(self, semitones):
        self.calls.append(("bend", semitones))


def test_midi_notes_bend_and_controllers_map_onto_the_controls():
    target, reports = Recorder(), []
    mapping = MidiMapping(target, SPECS, cc={1: "a", 7: "p"}, bend_range=12, report=reports.append)
    for message in [mido.Message("note_on", note=64, velocity=90), mido.Message("note_on", note=64, velocity=0),
                    mido.Message("note_off", note=67, channel=3), mido.Message("pitchwheel", pitch=4096),
                    mido.Message("control_change", control=1, value=127),
                    mido.Message("control_change", control=7, value=0),
                    mido.Message("control_change", control=64, value=127),  # not mapped: ignored
                    mido.Message("aftertouch", value=50)]:
        mapping.handle(message)
    assert target.calls == [("note_on", 64, 90), ("note_off", 64), ("note_off", 67), ("bend", 6.0),
                            ("set", {"a": 1.0}), ("set", {"p": 64.0})]
    assert reports == []


def test_a_refused_midi_message_is_reported_not_raised():
    class Refusing(Recorder):
        def note_on(self, note, velocity=100):
            raise ValueError("notes need a parameter for their pitch")

    reports = []
    MidiMapping(Refusing(), SPECS, report=reports.append).handle(mido.Message("note_on", note=60, velocity=10))
    assert len(reports) == 1 and "note_on" in reports[0] and "notes need a parameter" in reports[0]


@pytest.mark.parametrize("text, message", [
    ("1", "write CONTROLLER=PARAMETER"), ("200=a", "controller 0..127"), ("x=a", "write CONTROLLER=PARAMETER"),
    ("1=q", r"no parameter 'q'; its parameters are \['instID', 'a', 'p'\]"),
])
def test_bad_cc_mappings_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_cc([text], list(SPECS))


def test_cc_mappings_parse():
    assert parse_cc(["1=a", "74=p"], list(SPECS)) == {1: "a", 74: "p"}


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_osc_messages_drive_the_controls_and_bad_ones_are_reported():
    target, reports = Recorder(), []
    listener = OscListener(target, 0, report=reports.append)
    try:
        client = SimpleUDPClient("127.0.0.1", listener.port)
        client.send_message("/param/p", 70.5)
        client.send_message("/note_on", [67, 100])
        client.send_message("/note_off", 67)
        client.send_message("/param/q", 1.0)  # unknown parameter
        client.send_message("/note_on", 60)  # missing velocity
        client.send_message("/volume", 3)  # unknown address
        wait_for(lambda: len(target.calls) == 3 and len(reports) == 3)
    finally:
        listener.close()
    assert sorted(target.calls, key=str) == sorted([("set", {"p": 70.5}), ("note_on", 67, 100), ("note_off", 67)],
                                                   key=str)
    assert any("/param/q" in r and "unknown parameter 'q'" in r for r in reports)
    assert any("/note_on [60]: expects 2 number(s)" in r for r in reports)
    assert any("/volume: unknown address" in r for r in reports)


def test_a_flood_of_bad_osc_messages_writes_a_few_lines_a_second_and_a_count():
    target, reports = Recorder(), []
    listener = OscListener(target, 0, report=reports.append)
    start = time.monotonic()
    try:
        client = SimpleUDPClient("127.0.0.1", listener.port)
        # 120: more than loopback's default receive buffer holds is dropped by the kernel, the last message with it
        for k in range(120):
            client.send_message("/volume", float(k))  # unknown address (changes of one parameter are merged)
        client.send_message("/param/p", 70.0)
        wait_for(lambda: len(target.calls) == 1)
    finally:
        listener.close()
    seconds = time.monotonic() - start
    held = sum(int(r.split()[2]) for r in reports if r.startswith("... and"))
    assert len(reports) <= 6 * (seconds + 1)  # 5 lines and a count a second, not a line each
    assert held > 0 and target.calls == [("set", {"p": 70.0})]


def test_of_waiting_osc_messages_each_parameters_last_change_and_every_other_message_are_kept_in_order():
    def message(address, *args):
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        return builder.build().dgram, ("127.0.0.1", 1)

    waiting = [message("/param/p", 64.0), message("/note_on", 60, 100), message("/param/p", 65.0),
               message("/param/a", 0.5), message("/note_off", 60), message("/param/p", 66.0),
               message("/note_on", 60, 90), message("/volume", 1.0), message("/volume", 2.0)]
    assert latest_changes(waiting) == [waiting[i] for i in (1, 3, 4, 5, 6, 7, 8)]


def test_reports_beyond_a_few_a_second_are_counted_in_one_line():
    now, lines = [0.0], []
    report = RateLimitedReport(lines.append, burst=3, interval=1.0, clock=lambda: now[0])
    for k in range(10):
        report(f"bad {k}")
    assert lines == ["bad 0", "bad 1", "bad 2"]
    now[0] = 1.0
    report("bad 10")
    assert lines[3:] == ["... and 7 more like these within 1 s, not shown", "bad 10"]
    report.flush()
    assert len(lines) == 5
    for k in range(5):
        report(f"late {k}")
    report.flush()
    assert lines[5:] == ["late 0", "late 1", "... and 3 more like these within 1 s, not shown"]


def test_a_busy_osc_port_says_so():
    first = OscListener(Recorder(), 0)
    try:
        with pytest.raises(ValueError, match=f"OSC port {first.port} on 127.0.0.1 is busy.*--osc_port"):
            OscListener(Recorder(), first.port)
    finally:
        first.close()


HAS_SEQUENCER = os.path.exists("/dev/snd/seq")


def test_an_unknown_midi_port_names_the_ports_or_the_missing_sequencer():
    expected = "no MIDI input port 'No Such Keyboard'; the ports are" if HAS_SEQUENCER else "ALSA sequencer"
    with pytest.raises(ValueError, match=expected):
        open_midi_input("No Such Keyboard", False, print)


@pytest.mark.skipif(not HAS_SEQUENCER, reason="no ALSA sequencer (/dev/snd/seq) on this machine: virtual MIDI "
                                              "ports need it; the mapping is tested with mido messages above")
def test_a_virtual_midi_port_plays_notes_sent_to_it():
    target = Recorder()
    mapping = MidiMapping(target, SPECS)
    port = open_midi_input("RNNControl test", True, mapping.handle)
    try:
        with mido.open_output("RNNControl test") as keyboard:
            keyboard.send(mido.Message("note_on", note=65, velocity=80))
        wait_for(lambda: target.calls)
    finally:
        port.close()
    assert target.calls == [("note_on", 65, 80)]
