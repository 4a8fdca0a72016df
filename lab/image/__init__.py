"""Golden images: a Windows golden image built unattended from the user's ISOs
(:mod:`lab.image.windows_build`), and the image contract check of any guest kind
(:mod:`lab.image.check`)."""
