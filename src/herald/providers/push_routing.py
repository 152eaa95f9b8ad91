"""What the push providers share: each serves one platform (Web Push, APNs or FCM), so one
``HERALD_PUSH`` can list all three and every notification goes to the one for its token."""

from __future__ import annotations

from herald.domain.errors import ConfigurationError, PermanentError
from herald.domain.message import Content, Delivery, Push
from herald.providers.base import ProviderURL, content_of


def serves_platform(content: Content, platform: str) -> bool:
    """Whether ``content`` is a push for ``platform`` (the dispatcher skips the others)."""
    return isinstance(content, Push) and content.platform == platform


def push_for(delivery: Delivery, platform: str, provider: str) -> Push:
    """The delivery's push, if its token belongs to ``platform``; otherwise this provider
    cannot carry it, which is not the recipient's fault (another provider may)."""
    push = content_of(delivery, Push, provider)
    if push.platform != platform:
        raise PermanentError(
            f"{provider} sends {platform} pushes, not {push.platform}",
            code="wrong-platform",
            recipient_fault=False,
        )
    return push


def read_key_file(url: ProviderURL, option: str) -> str:
    """The text of the file an option names (a private key), as a ConfigurationError if
    it cannot be read."""
    path = url.option(option)
    if not path:
        raise ConfigurationError(f"{url.scheme}:// needs ?{option}=")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigurationError(f"{url.scheme}:// {option}={path!r}: {exc.strerror}") from None
