"""Telegram (`kind = "telegram"`): the Bot API's sendMessage to one chat."""
