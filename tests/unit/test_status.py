from herald.domain.status import CLAIMABLE, TERMINAL, TRANSITIONS, Status, can_transition


def test_every_status_has_a_transition_entry():
    assert set(TRANSITIONS) == set(Status)


def test_terminal_statuses_never_change():
    for status in TERMINAL:
        assert not TRANSITIONS[status]


def test_only_claimable_statuses_enter_sending():
    entering = {s for s, exits in TRANSITIONS.items() if Status.SENDING in exits}
    assert entering == CLAIMABLE


def test_dead_letters_can_be_requeued_and_sent_can_be_confirmed():
    assert can_transition(Status.DEAD, Status.QUEUED)
    assert can_transition(Status.SENT, Status.DELIVERED)
    assert not can_transition(Status.SENT, Status.SENDING)
