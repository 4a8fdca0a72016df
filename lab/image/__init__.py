"""Golden images: building a Windows golden image unattended, checking any image's contract."""
