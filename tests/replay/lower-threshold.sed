s/score >= 100/score >= 50/
s/    assign to queue "Inside Sales"/    assign to queue "Inside Sales"\n    notify user "alan@getcloudy.com"/
