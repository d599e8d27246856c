"""Start hfchat: `python app.py --help` lists the flags. The app itself is `hfchat.ui`."""

from hfchat.ui import build_app, main

__all__ = ["build_app", "main"]

if __name__ == "__main__":
    main()
