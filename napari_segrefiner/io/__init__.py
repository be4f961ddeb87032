"""Below everything: files in and out, images and masks validated and converted, the atomic write, and the
checks that refuse implausible runs. numpy (and the file libraries) only; no model, no network.
"""
