from hfchat.speed import SpeedMeter
from hfchat.testing import FakeClock


def test_meter_separates_prefill_from_decode() -> None:
    clock = FakeClock()
    meter = SpeedMeter(clock=clock)
    clock.now += 0.5
    meter.first_token()
    clock.now += 0.1
    meter.first_token()  # later calls don't move it
    clock.now += 1.9
    meter.output_tokens = 21
    meter.finish("length")
    assert meter.ttft_s == 0.5
    assert meter.total_s == 2.5
    assert meter.tokens_per_s == 10.0
    assert meter.finish_reason == "length"


def test_meter_without_tokens_has_no_speed() -> None:
    meter = SpeedMeter()
    assert meter.ttft_s is None and meter.total_s is None
    meter.first_token()
    meter.output_tokens = 1
    meter.finish()
    assert meter.tokens_per_s is None
    assert meter.total_s is not None and meter.total_s >= 0
