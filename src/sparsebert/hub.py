"""Upload an output directory to the Hugging Face Hub (``--push-to-hub REPO``). Network only.

The only code in sparsebert that talks to the Hub on purpose: ``huggingface_hub.HfApi``'s
``create_repo(repo_id, exist_ok=True)`` then ``upload_folder`` (one commit with every file of the
directory, hidden files excluded). The token is huggingface_hub's usual one (``HF_TOKEN`` or
``hf auth login``) unless given. Nothing else in sparsebert downloads or uploads at run time.
"""

from __future__ import annotations

from pathlib import Path

from sparsebert.errors import InputError, SparsebertError


class HubUploadError(SparsebertError, OSError):
    """Creating the Hub repository or uploading to it failed (network, token, permissions, offline
    mode); the message names the repository and the local directory, which is complete and can be
    pushed again."""


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid Hub model id (``name`` or ``owner/name``).

    Raises:
        InputError: naming the value and the rule it breaks (checked before any export work).
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InputError(f"--push-to-hub {repo_id!r} is not a valid Hub repository id: {err}") from None
    return repo_id


def push_to_hub(directory: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str | None = None) -> str:
    """Create the model repository ``repo_id`` if needed and upload ``directory`` to it.

    Args:
        directory: a finished output directory (a run or an export, with its ``README.md`` card).
        repo_id: ``owner/name`` on the Hub.
        private: visibility of a repository created now (None: the Hub's default).
        token: a Hub token (None: huggingface_hub's configured one).
        commit_message: default ``"Upload <directory name> with sparsebert"``.
    Returns:
        The URL of the commit (or of the repository when the Hub returns no commit URL).
    Raises:
        InputError: invalid ``repo_id``; FileNotFoundError: ``directory`` does not exist.
        HubUploadError: the Hub call failed (naming the repository and the cause).
    """
    from huggingface_hub import HfApi

    directory = Path(directory)
    check_repo_id(repo_id)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such output directory to push")
    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(directory),
                                 commit_message=commit_message or f"Upload {directory.name} with sparsebert",
                                 ignore_patterns=[".*", "**/.*"])
    except Exception as err:  # noqa: BLE001 - HTTP, connection, auth and offline-mode errors alike
        raise HubUploadError(f"push of {directory} to the Hub repository {repo_id!r} failed: "
                             f"{type(err).__name__}: {err} (the output is complete; push it again later)") from err
    return str(getattr(info, "commit_url", None) or getattr(repo, "url", None) or repo)
